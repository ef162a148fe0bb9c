"""The bash scripts a build's stages run, written the way GitLab Runner's shell writer does."""

from __future__ import annotations

import re
import shlex
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from alloy_runner.build.job import Artifact, Cache, GitInfo

PROLOGUE = "set -eo pipefail\n"
# The helper runs inside the build environment, like gitlab-runner-helper.
HELPER = f"{shlex.quote(sys.executable)} -m alloy_runner.helper"


def _echo(text: str, color: str = "32;1") -> str:
    return f"printf '%b%s%b\\n' '\\033[{color}m' {shlex.quote(text)} '\\033[0;m'\n"


def commands(lines: Sequence[str]) -> str:
    """Return the script of a job's step: each command echoed as `$ cmd`, then run."""
    out = [PROLOGUE]
    for line in lines:
        out.append(_echo(f"$ {line}"))
        out.append(f"{line}\n")
    return "".join(out)


def get_sources(git: GitInfo) -> str:
    """Return the script that fetches the repository and checks out the job's sha."""
    url = shlex.quote(git.repo_url)
    refspecs = git.refspecs or ("+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*")
    depth = f" --depth {git.depth}" if git.depth > 0 else ""
    sha = shlex.quote(git.sha or "FETCH_HEAD")
    return (
        PROLOGUE
        + _echo(f"Fetching changes{' with git depth set to ' + str(git.depth) if depth else ''}...")
        + "if [ -d .git ]; then\n"
        f"  git remote set-url origin {url}\n"
        "else\n"
        "  git -c init.defaultBranch=main init -q .\n"
        f"  git remote add origin {url}\n"
        "fi\n"
        f"git fetch -q --prune --force{depth} origin "
        + " ".join(shlex.quote(r) for r in refspecs)
        + "\n"
        + _echo(f"Checking out {(git.sha or 'FETCH_HEAD')[:8]} as {git.ref or 'detached HEAD'}...")
        + f"git -c advice.detachedHead=false checkout -f -q {sha}\n"
        "git clean -ffdx -q\n"
    )


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
        out.append(_echo(f"Restoring {what} from {archive.name}..."))
        out.append(f"{HELPER} extract --file {shlex.quote(str(archive))}\n")
    return "".join(out)


def archive(target: Path, paths: Sequence[str], exclude: Sequence[str], untracked: bool) -> str:
    """Return the script that packs `paths` of the project directory into `target`."""
    args = [f"--path {shlex.quote(p)}" for p in paths]
    args += [f"--exclude {shlex.quote(p)}" for p in exclude]
    if untracked:
        args.append("--untracked")
    return PROLOGUE + f"{HELPER} archive --file {shlex.quote(str(target))} {' '.join(args)}\n"


def archive_artifact(target: Path, artifact: Artifact) -> str:
    return archive(target, artifact.paths, artifact.exclude, artifact.untracked)


def archive_cache(target: Path, cache: Cache) -> str:
    return archive(target, cache.paths, (), cache.untracked)
