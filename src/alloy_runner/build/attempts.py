"""Job stage attempts, as GitLab Runner makes them (common/build.go's attemptExecuteStage).

GET_SOURCES_ATTEMPTS, RESTORE_CACHE_ATTEMPTS and ARTIFACT_DOWNLOAD_ATTEMPTS (job variables,
or `environment` in config.toml) let a failed get_sources, restore_cache or
download_artifacts stage run again, up to 10 times in all. Between two attempts the log says
`WARNING: Retrying...` and the runner waits: 5 s, then twice as long each time up to 5 min
(FF_USE_EXPONENTIAL_BACKOFF_STAGE_RETRY, on by default), or 1 s doubling up to 5 s with the
flag off. Before get_sources' second attempt, the project directory's tracked and untracked
files are deleted, as GitLab does for a fetch that broke the repository; for a container
executor, behind the get_sources script's checks and cleanups of what a previous job left in
.git (build/git_script.py), so that step's git never runs a planted config.

A value that is not an integer is warned about and the default (1) used; one outside [1, 10]
is warned about and clamped, with GitLab's words, at the start of the job's log.
EXECUTOR_JOB_SECTION_ATTEMPTS is read the same way; the docker executors use it (a section
whose container vanished runs again in a new one: executors/docker/sections.py); on a shell
runner, where no such failure exists, a value above 1 earns a warning that it changes nothing.

A stop (cancel, timeout) is never retried: the stage's result stands; a wait ends at a
cancel, and at the end of the job's time (GitLab Runner sleeps through both). Once the job is
stopped or its time spent, no attempt follows: the stage ends canceled or timed out before the
`Retrying...` warning and before the next attempt's script is made (for download_artifacts
that fetches every dependency again, for restore_cache the distributed cache). A failed
extraction of the cache is a warning in GitLab, not a failed stage, and is not retried either;
an executor's error in restore_cache (the docker engine failing it) is.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from alloy_runner.build import flags, git_script
from alloy_runner.build.expand import expand_all
from alloy_runner.build.states import BuildStage
from alloy_runner.config import feature_flags
from alloy_runner.exceptions import ExecutorError
from alloy_runner.executors.base import Outcome, ScriptResult

if TYPE_CHECKING:
    from alloy_runner.build.job import Job
    from alloy_runner.config.model import RunnerConfig

VARIABLES = {
    BuildStage.GET_SOURCES: "GET_SOURCES_ATTEMPTS",
    BuildStage.RESTORE_CACHE: "RESTORE_CACHE_ATTEMPTS",
    BuildStage.DOWNLOAD_ARTIFACTS: "ARTIFACT_DOWNLOAD_ATTEMPTS",
}
SECTION = "EXECUTOR_JOB_SECTION_ATTEMPTS"
DEFAULT, LOWEST, HIGHEST = 1, 1, 10
BACKOFF_FLAG = "FF_USE_EXPONENTIAL_BACKOFF_STAGE_RETRY"
BACKOFF = (5.0, 300.0)  # seconds: GitLab's DefaultStageRetryBackoffMin and Max, flag on
PLAIN_BACKOFF = (1.0, 5.0)  # GitLab's helpers/retry defaults, flag off
RETRYING = "WARNING: Retrying..."
SHELL_SECTIONS = (  # GitLab's shell executor ignores it silently; this runner says so
    f"WARNING: {SECTION}: only the docker executors run a section again (when its container "
    "was removed); the {executor} executor has no such failure, so it changes nothing here"
)
CLEAR_WORKTREE = (
    "set -eo pipefail\n"
    "printf '%b%s%b\\n' '\\033[32;1m' 'Deleting tracked and untracked files...' '\\033[0;m'\n"
    "if [ -d .git ] && [ ! -L .git ]; then\n"
    "  git rm -rf --ignore-unmatch --quiet .\n"
    "  git clean -ffdx -q\n"
    "fi\n"
)
_GO_INT = re.compile(r"[+-]?[0-9]+")
_INT64 = 2**63 - 1

Pause = Callable[[float, asyncio.Event], Awaitable[bool]]
Script = Callable[[], Awaitable[str | None]]
Execute = Callable[[str], Awaitable[ScriptResult]]
Log = Callable[[str], None]


@dataclass(frozen=True)
class Attempts:
    """How many times each stage may run for one job, the waits between, and the warnings
    its variables earned."""

    stages: dict[BuildStage, int] = field(default_factory=dict)
    section: int = DEFAULT
    backoff: tuple[float, float] = BACKOFF
    warnings: tuple[str, ...] = ()

    def of(self, stage: BuildStage) -> int:
        return self.stages.get(stage, DEFAULT)

    def delays(self) -> Iterator[float]:
        """The waits before the second, third... attempt: doubling from the least, capped."""
        least, most = self.backoff
        delay = least
        while True:
            yield min(delay, most)
            delay *= 2


def _value(variables: Mapping[str, str], name: str) -> tuple[int, str | None]:
    """Read one attempts variable as GitLab does (Go's ParseInt, then a clamp to [1, 10])."""
    raw = variables.get(name, "")
    if raw == "":
        return DEFAULT, None
    if not _GO_INT.fullmatch(raw) or abs(int(raw)) > _INT64:
        return DEFAULT, f'{name}: expected int got "{raw}", using default value: {DEFAULT}'
    number = int(raw)
    clamped = max(LOWEST, min(HIGHEST, number))
    if clamped == number:
        return number, None
    return clamped, (
        f"{name}: number of attempts out of the range [{LOWEST}, {HIGHEST}], clamping to: {clamped}"
    )


def settings(job: Job, runner: RunnerConfig) -> Attempts:
    """Return a job's attempts: config.toml's `environment`, then the job's variables (the
    job's win), their references expanded, as in GitLab."""
    pairs = [(k, v) for k, _, v in (pair.partition("=") for pair in runner.environment)]
    pairs += [(v.key, v.value) for v in job.variables]
    values = expand_all(dict(pairs), frozenset(v.key for v in job.variables if v.raw))
    warnings, stages = [], {}
    for name in (SECTION, *VARIABLES.values()):  # GitLab's order of its warnings
        number, warning = _value(values, name)
        if warning:
            warnings.append(f"WARNING: {warning}")
        stages[name] = number
    if stages[SECTION] > 1 and runner.executor not in feature_flags.DOCKER:
        warnings.append(SHELL_SECTIONS.format(executor=runner.executor))
    on = flags.is_on(BACKOFF_FLAG, job, runner)
    return Attempts(
        {stage: stages[name] for stage, name in VARIABLES.items()},
        stages[SECTION],
        BACKOFF if on else PLAIN_BACKOFF,
        tuple(warnings),
    )


async def pause(seconds: float, stop: asyncio.Event) -> bool:
    """Wait `seconds` before the next attempt; False when the build stops meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return not stop.is_set()


async def run(
    stage: BuildStage,
    attempts: Attempts,
    script: Script,
    execute: Execute,
    *,
    log: Log,
    stop: asyncio.Event,
    wait: Pause = pause,
    left: Callable[[], float] = lambda: float("inf"),
) -> ScriptResult | None:
    """Run `stage` (its script made anew each time) until it works or its attempts are spent.

    None: the stage has nothing to run. An executor's error on the last attempt is raised.
    A wait ends when the job's time is `left`; once the build is stopped or no time is left,
    the stage ends (canceled, timed out) without a warning or another script.
    """
    tries, delays = attempts.of(stage), iter(attempts.delays())
    for attempt in range(1, tries + 1):
        body = await script()
        if body is None:
            return None
        if attempt == 2 and stage is BuildStage.GET_SOURCES:
            body = _clear_worktree(body)
        try:
            result = await execute(body)
        except ExecutorError:
            if attempt == tries:
                raise
        else:
            if result.ok or attempt == tries or not _retried(stage, result):
                return result
        if (ended := _ended(stop, left)) is not None:  # before the warning and the next script
            return ended
        log(RETRYING)
        if not await wait(max(0.0, min(next(delays), left())), stop):
            return ScriptResult(Outcome.CANCELED)
        if (ended := _ended(stop, left)) is not None:
            return ended
    raise AssertionError("unreachable: the last attempt returns or raises")


def _ended(stop: asyncio.Event, left: Callable[[], float]) -> ScriptResult | None:
    """The stage's result when the build was stopped or the job's time is spent: no further
    attempt is made then, nor its script (a download of every dependency, of the cache)."""
    if stop.is_set():
        return ScriptResult(Outcome.CANCELED)
    if left() <= 0:
        return ScriptResult(Outcome.TIMED_OUT)
    return None


def _clear_worktree(body: str) -> str:
    """CLEAR_WORKTREE before `body`; behind the checks and cleanups of what a previous job
    left in .git when the script's git runs on the host for a container job
    (build/git_script.py), so that its git never runs a planted config."""
    if git_script.HOST_GIT_MARK in body:
        return git_script.protected_clear(CLEAR_WORKTREE) + body
    return CLEAR_WORKTREE + body


def _retried(stage: BuildStage, result: ScriptResult) -> bool:
    """A stopped stage is not run again; nor is a cache that failed to extract (a warning)."""
    if result.outcome is not Outcome.EXITED:
        return False
    return stage is not BuildStage.RESTORE_CACHE
