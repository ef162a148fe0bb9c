"""The bash scripts a build's stages run, written the way GitLab Runner's shell writer does."""

from __future__ import annotations

import re
import shlex
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from alloy_runner.build.job import Artifact, Cache

PROLOGUE = "set -eo pipefail\n"
# The helper runs inside the build environment, like gitlab-runner-helper.
HELPER = f"{shlex.quote(sys.executable)} -m alloy_runner.helper"


def echo(text: str, color: str = "32;1") -> str:
    return f"printf '%b%s%b\\n' '\\033[{color}m' {shlex.quote(text)} '\\033[0;m'\n"


# FF_ENABLE_BASH_EXIT_CODE_CHECK: GitLab Runner's line after each command, for the failures
# `set -e` lets pass (`false && true`, a failing command in a negated or `||` list's left).
EXIT_CODE_CHECK = (
    "_runner_exit_code=$?; if [ $_runner_exit_code -ne 0 ]; then exit $_runner_exit_code; fi\n"
)


def commands(lines: Sequence[str], check: bool = False) -> str:
    """Return the script of a job's step: each command echoed as `$ cmd`, then run (and its
    exit code checked, with `check`: FF_ENABLE_BASH_EXIT_CODE_CHECK)."""
    return PROLOGUE + "".join(_command(line, check) for line in lines)


# Go's unicode.IsSpace, which strings.TrimSpace trims (Python's str.strip() trims more).
_GO_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000" + "".join(
    map(chr, range(0x2000, 0x200B))
)


def _command(line: str, check: bool = False) -> str:
    """Write one command as GitLab Runner's writeCommands does: trimmed of surrounding white
    space (so a heredoc's `EOF ` ends it), echoed (a multi-line one by its first line), run;
    an empty one is an `echo`."""
    line = line.strip(_GO_SPACE)
    after = f"{line}\n" + (EXIT_CODE_CHECK if check else "")
    if not line:
        return "echo\n" + after
    first, _, rest = line.partition("\n")
    shown = echo(f"$ {first}" + (" # collapsed multi-line command" if rest else ""))
    return shown + after


def user_script(
    lines: Sequence[str], pre: str = "", post: str = "", xtrace: bool = False, check: bool = False
) -> str:
    """Return the build stage's script: pre_build_script, the job's script, post_build_script.

    One shell runs them in order with `set -e`, as GitLab Runner's shell writer does: a failing
    pre_build_script ends the stage before the job's script, and post_build_script runs only
    after a script that succeeded. `check`: FF_ENABLE_BASH_EXIT_CODE_CHECK.
    """
    body = [PROLOGUE, "set -x\n" if xtrace else ""]
    if pre.strip():
        body.append(_command(pre, check))
    body += [_command(line, check) for line in lines]
    if post.strip():
        body.append(_command(post, check))
    return "".join(body)


def around(body: str | None, pre: str, post: str, check: bool = False) -> str | None:
    """Return `body` (a stage's script, or None: no script) between two operator hooks."""
    if body is None and not pre.strip() and not post.strip():
        return None
    parts = [PROLOGUE]
    if pre.strip():
        parts.append(_command(pre, check))
    if body is not None:
        parts.append(f"(\n{body})\n")
    if post.strip():
        parts.append(_command(post, check))
    return "".join(parts)


def with_clone_url(repo_url: str, clone_url: str) -> str:
    """Return `repo_url` fetched through `clone_url` (GitLab's `clone_url`): its scheme, host
    and path prefix replace the coordinator's; the job's credentials and project path stay."""
    repo = urlsplit(repo_url)
    if not clone_url or repo.scheme not in ("http", "https"):
        return repo_url
    base = urlsplit(clone_url)
    userinfo = repo.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@{base.netloc}" if userinfo else base.netloc
    return urlunsplit((base.scheme, netloc, base.path.rstrip("/") + repo.path, repo.query, ""))


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def cache_file(cache_root: Path, project: str, cache: Cache) -> Path:
    """Return where a cache key of a project is kept on this host."""
    key = _UNSAFE.sub("_", cache.key) or "default"
    if key in (".", ".."):
        key = key.replace(".", "_")
    return cache_root / (_UNSAFE.sub("_", project) or "project") / key / "cache.zip"


def extract(archives: Iterable[Path], what: str) -> str:
    """Return the script that unpacks `archives` into the project directory."""
    out = [PROLOGUE]
    for archive in archives:
        out.append(echo(f"Restoring {what} from {archive.name}..."))
        out.append(f"{HELPER} extract --file {shlex.quote(str(archive))}\n")
    return "".join(out)


def archive(target: Path, paths: Sequence[str], exclude: Sequence[str], untracked: bool) -> str:
    """Return the script that packs `paths` of the project directory into `target`."""
    args = [f"--path {shlex.quote(p)}" for p in paths]
    args += [f"--exclude {shlex.quote(p)}" for p in exclude]
    if untracked:
        args.append("--untracked")
    # The directory is made by the script, so that it belongs to whoever runs the job (--user).
    return (
        PROLOGUE
        + f"mkdir -p {shlex.quote(str(target.parent))}\n"
        + f"{HELPER} archive --file {shlex.quote(str(target))} {' '.join(args)}\n"
    )


def archive_artifact(target: Path, artifact: Artifact) -> str:
    return archive(target, artifact.paths, artifact.exclude, artifact.untracked)


def archive_cache(target: Path, cache: Cache) -> str:
    return archive(target, cache.paths, (), cache.untracked)


# FF_ENABLE_JOB_CLEANUP: what a fetched project keeps is only its .git; anything else goes.
CLEANUP = (
    PROLOGUE
    + echo("Cleaning up project directory and file based variables")
    + "if [ -d .git ]; then git clean -ffdx -q && git reset --hard -q; "
    + "else find . -mindepth 1 -delete; fi\n"
)
