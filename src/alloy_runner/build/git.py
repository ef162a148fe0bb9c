"""The GIT_* variables of a job, read as GitLab Runner reads them (common/build_settings.go).

Each value is taken from the job's variables once expanded by GitLab's rules. A value
GitLab Runner would not accept falls back to its default with the warning GitLab Runner
prints; what GitLab Runner refuses (GIT_CLONE_PATH without `custom_build_dir`, an unknown
GIT_SUBMODULE_STRATEGY, an `:(exclude)` in GIT_SUBMODULE_PATHS) fails the job before
it starts. build/git_script.py writes the get_sources script from these settings.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit, urlunsplit

from alloy_runner.build.expand import expand_all
from alloy_runner.build.job import Job

__all__ = [
    "CLONE",
    "EMPTY",
    "FETCH",
    "NONE",
    "GitSettings",
    "host_problem",
    "problem",
    "settings",
    "submodule_https",
]

CLONE, FETCH, NONE, EMPTY = "clone", "fetch", "none", "empty"
STRATEGIES = (CLONE, FETCH, NONE, EMPTY)
SUBMODULE_STRATEGIES = ("normal", "recursive", "none")
INVALID = "invalid"  # GitLab Runner's SubmoduleInvalid

CLEAN_FLAGS = ("-ffdx",)
FETCH_FLAGS = ("--prune", "--quiet")

# Go's strconv.ParseBool, which GitLab Runner reads booleans with.
_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})
_INT = re.compile(r"[+-]?[0-9]+")


@dataclass(frozen=True)
class GitSettings:
    """What a job's GIT_* variables ask of the get_sources stage."""

    strategy: str = FETCH
    checkout: bool = True
    clean_flags: tuple[str, ...] = CLEAN_FLAGS
    fetch_flags: tuple[str, ...] = FETCH_FLAGS
    submodule_strategy: str = "none"
    submodule_paths: tuple[str, ...] = ()
    submodule_depth: int = 0
    submodule_update_flags: tuple[str, ...] = ()
    lfs_skip_smudge: bool = False
    submodule_force_https: bool = False
    clone_path: str = ""
    clone_extra_flags: tuple[str, ...] = ()
    warnings: tuple[str, ...] = field(default=(), compare=False)

    @property
    def fetches(self) -> bool:
        """Whether the strategy sets up a repository (fetch or clone)."""
        return self.strategy in (FETCH, CLONE)

    @property
    def checks_out(self) -> bool:
        """GitLab's GetGitCheckout: never with GIT_STRATEGY none or empty."""
        return self.fetches and self.checkout

    @property
    def submodules(self) -> str:
        """GitLab's GetSubmoduleStrategy: none with GIT_STRATEGY none or empty, `invalid`
        for a value it does not know."""
        if not self.fetches:
            return "none"
        return (
            self.submodule_strategy if self.submodule_strategy in SUBMODULE_STRATEGIES else INVALID
        )


def job_values(job: Job, environment: Sequence[str] = ()) -> dict[str, str]:
    """The variables GitLab Runner reads settings from, expanded as it expands them: the
    runner's `environment` (config.toml), then the job's variables (a later one wins)."""
    values = dict(entry.partition("=")[::2] for entry in environment)
    values.update((v.key, v.value) for v in job.variables)
    raw = frozenset(v.key for v in job.variables if v.raw)
    return expand_all(values, raw)


def settings(job: Job, environment: Sequence[str] = ()) -> GitSettings:
    """Read the GIT_* variables of `job` (and of the runner's `environment`), with GitLab
    Runner's defaults and warnings."""
    return read(job_values(job, environment), job.git_info.depth, job.allow_git_fetch)


def read(values: Mapping[str, str], depth: int = 0, allow_fetch: bool = True) -> GitSettings:
    """Read GIT_* settings from expanded variable values (`depth`: git_info.depth;
    `allow_fetch`: the payload's allow_git_fetch, the project's strategy, else clone)."""
    warnings: list[str] = []
    reader = _Reader(values, warnings, FETCH if allow_fetch else CLONE)
    got = GitSettings(
        strategy=reader.strategy(),
        checkout=reader.boolean("GIT_CHECKOUT", True),
        clean_flags=reader.flags("GIT_CLEAN_FLAGS", CLEAN_FLAGS),
        fetch_flags=reader.flags("GIT_FETCH_EXTRA_FLAGS", FETCH_FLAGS),
        submodule_strategy=reader.submodule_strategy(),
        submodule_paths=tuple(values.get("GIT_SUBMODULE_PATHS", "").split()),
        submodule_depth=reader.integer("GIT_SUBMODULE_DEPTH", depth),
        submodule_update_flags=reader.flags("GIT_SUBMODULE_UPDATE_FLAGS", ()),
        lfs_skip_smudge=reader.boolean("GIT_LFS_SKIP_SMUDGE", False),
        submodule_force_https=reader.boolean("GIT_SUBMODULE_FORCE_HTTPS", False),
        clone_path=values.get("GIT_CLONE_PATH", ""),
        clone_extra_flags=reader.flags("GIT_CLONE_EXTRA_FLAGS", ()),
    )
    if got.clone_extra_flags:
        warnings.append(
            "GIT_CLONE_EXTRA_FLAGS: ignored, as GitLab Runner ignores it without"
            " FF_USE_GIT_NATIVE_CLONE (which this runner does not work as)"
        )
    return replace(got, warnings=tuple(warnings))


@dataclass
class _Reader:
    """GitLab Runner's `validate`: a value it cannot read is its default, with a warning."""

    values: Mapping[str, str]
    warnings: list[str]
    default_strategy: str = FETCH

    def strategy(self) -> str:
        raw = self.values.get("GIT_STRATEGY", "")
        if raw in STRATEGIES:
            return raw
        if raw:
            self.warnings.append(
                "GIT_STRATEGY: expected either 'clone', 'fetch', 'none' or 'empty'"
                f" got \"{raw}\", using default value '{self.default_strategy}'"
            )
        return self.default_strategy

    def submodule_strategy(self) -> str:
        raw = self.values.get("GIT_SUBMODULE_STRATEGY", "")
        if raw in SUBMODULE_STRATEGIES:
            return raw
        if not raw:
            return "none"
        self.warnings.append(
            f"GIT_SUBMODULE_STRATEGY: expected either 'normal', 'recursive' or 'none' got \"{raw}\""
        )
        return raw

    def boolean(self, name: str, default: bool) -> bool:
        raw = self.values.get(name, "")
        if not raw:
            return default
        if raw in _TRUE or raw in _FALSE:
            return raw in _TRUE
        self.warnings.append(
            f'{name}: expected bool got "{raw}", using default value: {str(default).lower()}'
        )
        return default

    def integer(self, name: str, default: int) -> int:
        raw = self.values.get(name, "")
        if not raw:
            return default
        if _INT.fullmatch(raw):
            return int(raw)
        self.warnings.append(f'{name}: expected int got "{raw}", using default value: {default}')
        return default

    def flags(self, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
        raw = self.values.get(name, "")
        if not raw:
            return default
        return () if raw == "none" else tuple(raw.split())


def problem(git: GitSettings) -> str | None:
    """What GitLab Runner refuses in these settings (the job fails before it starts), if any.

    GIT_CLONE_PATH needs `custom_build_dir`, which this runner refuses in its config; an
    unknown GIT_SUBMODULE_STRATEGY and an `:(exclude)` alone in GIT_SUBMODULE_PATHS fail
    the job's script in GitLab Runner.
    """
    if git.clone_path:
        return "setting GIT_CLONE_PATH is not allowed, enable `custom_build_dir` feature"
    submodules = git.submodules
    if submodules == INVALID:
        return (
            "unknown GIT_SUBMODULE_STRATEGY: expected either 'normal', 'recursive' or 'none'"
            f' got "{git.submodule_strategy}"'
        )
    if submodules == "none":
        return None
    if ":(exclude)" in git.submodule_paths:
        quoted = " ".join(f'"{path}"' for path in git.submodule_paths)
        return f"GIT_SUBMODULE_PATHS: invalid submodule pathspec [{quoted}]"
    return None


# Options that make git run a program, read another config or another repository of the
# host's: refused where git runs on the runner's host for a job in a container. git takes
# any unambiguous abbreviation of a long option (`--upl=` is `--upload-pack=`).
HOST_REFUSED_LONG = (
    "--upl",
    "--exec",
    "--config",
    "--template",
    "--separate-git-dir",
    "--git-dir",
    "--work-tree",
)


def host_problem(git: GitSettings) -> str | None:
    """What the container executors refuse in these settings, whose git runs on the runner's
    host (executors/docker/executor.py): an option of GIT_FETCH_EXTRA_FLAGS or
    GIT_SUBMODULE_UPDATE_FLAGS that would run a program or read a path there."""
    flagged = (
        ("GIT_FETCH_EXTRA_FLAGS", git.fetch_flags, HOST_REFUSED_LONG),
        # --reference: alternates into another repository of the host's
        ("GIT_SUBMODULE_UPDATE_FLAGS", git.submodule_update_flags, (*HOST_REFUSED_LONG, "--ref")),
    )
    for name, flags, refused in flagged:
        for flag in flags:
            short = flag.startswith("-") and not flag.startswith("--")
            if flag.startswith(refused) or (short and ("u" in flag or "c" in flag)):
                return (
                    f"{name}: {flag.partition('=')[0]} is refused: this runner's git runs on"
                    " its host for a job in a container, and the option would run a program"
                    " or read a path there"
                )
    return None


def submodule_https(
    repo_url: str, server_url: str, values: Mapping[str, str]
) -> tuple[tuple[str, str], ...]:
    """GIT_SUBMODULE_FORCE_HTTPS (GitLab Runner's sshInsteadOfs): the (base, prefix) pairs of
    git's `url.<base>.insteadOf=<prefix>` that send the GitLab server's SSH URLs to its HTTP(S)
    base, with the job's credentials. `server_url`: clone_url, else the runner's `url`, else
    the repository's own scheme and host. Nothing when the sources do not come over HTTP(S)."""
    web = ("http", "https")
    repo = urlsplit(repo_url)
    server = urlsplit(server_url) if urlsplit(server_url).scheme in web else repo
    if repo.scheme not in web:
        return ()
    userinfo = repo.netloc.rpartition("@")[0]
    host_port = server.netloc.rpartition("@")[2]
    netloc = f"{userinfo}@{host_port}" if userinfo else host_port
    path = server.path if server is not repo else ""
    base = urlunsplit((server.scheme, netloc, path, "", "")).rstrip("/")
    values_host = values.get("CI_SERVER_SHELL_SSH_HOST") or values.get("CI_SERVER_HOST")
    host = values_host or repo.hostname or ""
    port = values.get("CI_SERVER_SHELL_SSH_PORT", "")
    if port in ("", "22"):
        return ((f"{base}/", f"git@{host}:"), (base, f"ssh://git@{host}"))
    return ((base, f"ssh://git@{host}:{port}"),)
