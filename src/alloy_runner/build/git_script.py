"""The get_sources script, written as GitLab Runner's shell writer writes it
(shells/abstract.go: writeCloneFetchCmds, writeRefspecFetchCmd, writeCheckoutCmd,
writeSubmoduleUpdateCmd), from the job's GIT_* settings (build/git.py).

The script runs in the project directory. Every value that comes from the job is
shell-quoted: flags are passed to git as words, never evaluated by the shell.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from dataclasses import replace
from urllib.parse import urlsplit, urlunsplit

from alloy_runner.build.git import CLONE, EMPTY, NONE, GitSettings
from alloy_runner.build.job import GitInfo
from alloy_runner.build.script import PROLOGUE, echo

__all__ = ["sources"]

DEFAULT_REFSPECS = ("+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*")
# Lock files a terminated job can leave behind, which would fail the next fetch.
LOCK_FILES = ("index.lock", "shallow.lock", "HEAD.lock", "hooks/post-checkout", "config.lock")
EMPTY_THE_DIRECTORY = "find . -mindepth 1 -delete\n"
HAS_LFS = "git lfs version >/dev/null 2>&1"
# Adds one entry to the GIT_CONFIG_COUNT/KEY/VALUE of the gits that follow: a builtin, so
# a value (the job's credentials) never shows in a process's argv.
GIT_CONFIG_FUNCTION = """_alloy_git_config() {
  local n=${GIT_CONFIG_COUNT:-0}
  case $n in ''|*[!0-9]*) n=0 ;; esac
  export "GIT_CONFIG_KEY_$n=$1" "GIT_CONFIG_VALUE_$n=$2" "GIT_CONFIG_COUNT=$((n + 1))"
}
"""
# Marks a get_sources script whose git runs on the host for a job in a container: a retry's
# clear-worktree step runs with the same checks and cleanups first (protected_clear).
HOST_GIT_MARK = "# alloy-runner: host git for a container job (build/git_script.py)\n"
# For the container executors, git runs on the host: no fsmonitor, hook or ext:: transport
# of a repository's config there (git passes `-c` on to the gits it starts).
HOST_GIT = (
    "git() { command git -c core.fsmonitor=false -c core.hooksPath=/dev/null"
    ' -c protocol.ext.allow=never "$@"; }\n'
)
# What a previous job (in a container) may leave to make the host's git read a config, write
# or delete outside the project directory: a .git that is a symlink or a file (`gitdir:`),
# a symlink, a `commondir` or an alternates file in it, a lock path that is no file; with
# submodules, a submodule's .git that does not point into .git/modules. Any of them: the
# project directory is emptied (`find -delete` follows no symlink) and git starts afresh.
PLANTED = r"""_alloy_planted() {
  [ -L .git ] && return 0
  [ -e .git ] || return 1
  [ -d .git ] || return 0
  [ -z "$(find .git \( -type l -o -name commondir -o -name alternates -o -name http-alternates \
    -o \( -name '*.lock' ! -type f \) \) -print -quit)" ] || return 0
  [ "$1" = submodules ] || return 1
  local modules dotgit target
  modules="$(pwd -P)/.git/modules/"
  while IFS= read -r -d '' dotgit; do
    [ -f "$dotgit" ] && [ ! -L "$dotgit" ] || return 0
    target=$(sed -n '1s/^gitdir: //p' "$dotgit")
    [ -n "$target" ] || return 0
    case "$target" in /*) ;; *) target="$(dirname "$dotgit")/$target" ;; esac
    case "$(realpath -m -- "$target")/" in "$modules"*) ;; *) return 0 ;; esac
  done < <(find . -path ./.git -prune -o -name .git -print0)
  return 1
}
"""


def _words(words: Iterable[str]) -> str:
    return " ".join(shlex.quote(w) for w in words)


def _warning(text: str) -> str:
    return echo(f"WARNING: {text}", "0;33")


def sources(
    info: GitInfo,
    git: GitSettings,
    rewrites: tuple[tuple[str, str], ...] = (),
    clean_config: bool = False,
) -> str:
    """Return the script that sets up the project directory as the job's settings ask;
    `rewrites`: the `url.<base>.insteadOf=<prefix>` pairs of the submodule commands
    (GIT_SUBMODULE_FORCE_HTTPS), exported as the job's credentials are (_credentials);
    `clean_config`: check and clean what a job left in the repository before git runs
    (GitLab Runner's default but for the shell executor: here git runs on the runner's
    host, the job in a container)."""
    out = [PROLOGUE]
    if not git.lfs_skip_smudge:
        # As GitLab Runner: no smudging while fetching (memory), `git lfs pull` after checkout.
        out.append("export GIT_LFS_SKIP_SMUDGE=1\n")
    if git.strategy == NONE:
        out.append(echo("Skipping Git repository setup"))
    elif git.strategy == EMPTY:
        out.append(echo("Skipping Git repository setup and creating an empty build directory"))
        out.append(EMPTY_THE_DIRECTORY)
    else:
        if clean_config:
            out.append(_guard(git.submodules != "none"))
        out.append(_remove_locks(git.submodules != "none"))
        if clean_config:
            out.append(_remove_configs(git.submodules != "none"))
            out.append(HOST_GIT_MARK)
        if git.strategy == CLONE:
            out.append(EMPTY_THE_DIRECTORY)  # always start from a fresh repository
        plain, credentials = _credentials(info.repo_url)
        out.append(GIT_CONFIG_FUNCTION)
        out.append(_git_config(credentials))
        out.append(_fetch(replace(info, repo_url=plain), git))
    if git.checks_out:
        out.append(_checkout(info, git))
    else:
        out.append(echo("Skipping Git checkout"))
    if git.submodules == "none":
        out.append(echo("Skipping Git submodules setup"))
    else:
        out.append(_git_config(rewrites))
        out.append(_submodules(git, git.submodules == "recursive"))
    return "".join(out)


def protected_clear(clear: str) -> str:
    """The retry's clear-worktree script `clear` (build/attempts.py), which runs before the
    operator's pre_get_sources_script as in GitLab, behind the same checks and cleanups as
    the fetch of a HOST_GIT_MARK script: its `git rm` and `git clean` never run a planted
    config nor follow a planted .git out of the project directory."""
    return PROLOGUE + _guard(True) + _remove_locks(True) + _remove_configs(True) + clear


def _guard(submodules: bool) -> str:
    """The host's git never runs what a previous job planted (PLANTED, HOST_GIT)."""
    args = " submodules" if submodules else ""
    return (
        HOST_GIT
        + PLANTED
        + f"if _alloy_planted{args}; then\n"
        + "  "
        + _warning(
            ".git in the project directory was changed to reach outside it (by a previous"
            " job): emptying the project directory"
        )
        + "  "
        + EMPTY_THE_DIRECTORY
        + "fi\n"
    )


def _remove_locks(in_modules: bool) -> str:
    """A lock path that is no file (a directory would make `rm -f` fail every later job) is
    removed as it is, first (for the container executors, the guard has emptied such a
    project directory already); then the lock files."""
    out = [
        "if [ -d .git ] && [ ! -L .git ]; then\n"
        "  find .git -name '*.lock' ! -type f -prune -exec rm -rf {} +\n"
        "fi\n",
        "rm -f " + _words(f".git/{name}" for name in LOCK_FILES) + "\n",
    ]
    if in_modules:
        names = " -o ".join(f"-name {shlex.quote(n.rpartition('/')[2])}" for n in LOCK_FILES)
        out.append(
            f"if [ -d .git/modules ]; then find .git/modules \\( {names} \\) -type f -delete; fi\n"
        )
    out.append("if [ -d .git/refs ]; then find .git/refs -name '*.lock' -type f -delete; fi\n")
    return "".join(out)


def _credentials(url: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """The repository's URL without the job's credentials, and the `url.<base>.insteadOf`
    pair that gives them back to every URL of that server (submodules' relative URLs too),
    through the environment: never in git's argv (`ps`) nor in `.git/config` after the job."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or "@" not in parts.netloc:
        return url, ()
    userinfo, _, host = parts.netloc.rpartition("@")
    plain = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return plain, ((f"{parts.scheme}://{userinfo}@{host}/", f"{parts.scheme}://{host}/"),)


def _git_config(rewrites: Iterable[tuple[str, str]]) -> str:
    """Export each `url.<base>.insteadOf=<prefix>` for the gits that follow (GIT_CONFIG_*)."""
    return "".join(
        f"_alloy_git_config {shlex.quote(f'url.{base}.insteadOf')} {shlex.quote(prefix)}\n"
        for base, prefix in rewrites
    )


def _remove_configs(in_modules: bool) -> str:
    """writeGitCleanupAllConfigs: a config or a hook can run any command when git runs."""
    out = ["rm -f .git/config\nrm -rf .git/hooks\n"]
    if in_modules:
        out.append(
            "if [ -d .git/modules ]; then\n"
            "  find .git/modules -name config -type f -delete\n"
            "  find .git/modules -name hooks -type d -prune -exec rm -rf {} +\n"
            "fi\n"
        )
    return "".join(out)


def _fetch(info: GitInfo, git: GitSettings) -> str:
    """git init, the origin remote, then one fetch of the job's refspecs (writeRefspecFetchCmd)."""
    url = shlex.quote(info.repo_url)
    depth = info.depth
    fetch = [
        "git",
        "fetch",
        "origin",
        "--no-recurse-submodules",
        *(info.refspecs or DEFAULT_REFSPECS),
    ]
    if depth > 0:
        fetch += ["--depth", str(depth)]
    fetch += git.fetch_flags
    out = [
        echo(
            f"Fetching changes with git depth set to {depth}..."
            if depth > 0
            else "Fetching changes..."
        ),
        "git -c init.defaultBranch=main init\n",
        f"if git remote add origin {url} >/dev/null 2>&1; then\n",
        "  " + echo("Created fresh repository."),
        f"else\n  git remote set-url origin {url}\nfi\n",
    ]
    if depth > 0:
        out.append(_words(fetch) + "\n")
    else:  # a full fetch of a repository a shallow fetch made before
        out.append(f"if [ -f .git/shallow ]; then\n  {_words(fetch)} --unshallow\n")
        out.append(f"else\n  {_words(fetch)}\nfi\n")
    return "".join(out)


def _checkout(info: GitInfo, git: GitSettings) -> str:
    sha = info.sha or "FETCH_HEAD"
    out = [
        echo(f"Checking out {sha[:8]} as detached HEAD (ref is {info.ref})..."),
        f"git -c submodule.recurse=false checkout -f -q {shlex.quote(sha)}\n",
    ]
    if git.clean_flags:
        out.append(_words(("git", "clean", *git.clean_flags)) + "\n")
    if not git.lfs_skip_smudge:
        out.append(f"if {HAS_LFS}; then\n  git lfs pull\nfi\n")
    return "".join(out)


def _submodules(git: GitSettings, recursive: bool) -> str:
    """writeSubmoduleUpdateCmd: init, sync, clean and reset, update (retried once), clean."""
    depth = git.submodule_depth
    how = " recursively" if recursive else ""
    deep = f" with git depth set to {depth}" if depth > 0 else ""
    paths = ("--", *git.submodule_paths) if git.submodule_paths else ()
    each = ("submodule", "foreach", *(("--recursive",) if recursive else ()))
    remote = "git "  # what fetches from the remotes
    sync = _words(("git", "submodule", "sync", *each[2:], *paths))
    update = ["submodule", "update", "--init", *each[2:]]
    update += ["--depth", str(depth)] if depth > 0 else []
    update_line = remote + _words((*update, *git.submodule_update_flags, *paths))
    clean = _words(("git", *each, "git", "clean", *(git.clean_flags or ("-ffdx",))))
    reset = _words(("git", *each, "git", "reset", "--hard"))
    retry = [_warning("Updating submodules failed. Retrying...")]
    if any(flag.lower() == "--remote" for flag in git.submodule_update_flags):
        remote_heads = ("git", "fetch", "origin", "+refs/heads/*:refs/remotes/origin/*")
        retry.append(remote + _words((*each, *remote_heads)) + "\n")
    retry += [f"{sync}\n", f"{update_line}\n", f"{reset}\n"]
    out = [
        echo(f"Updating/initializing submodules{how}{deep}..."),
        "git submodule init\n",
        f"{sync}\n{clean}\n{reset}\n",
        f"if {update_line}; then\n",
        "  " + echo("Updated submodules"),
        f"  {sync}\nelse\n",
        "".join("  " + line for line in retry),
        f"fi\n{clean}\n",
    ]
    if not git.lfs_skip_smudge:
        lfs_pull = remote + _words((*each, "git", "lfs", "pull"))
        out.append(f"if {HAS_LFS}; then\n  " + echo("Pulling LFS files...") + f"  {lfs_pull}\nfi\n")
    return "".join(out)
