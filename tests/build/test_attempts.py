"""GET_SOURCES_ATTEMPTS, RESTORE_CACHE_ATTEMPTS, ARTIFACT_DOWNLOAD_ATTEMPTS and
EXECUTOR_JOB_SECTION_ATTEMPTS, through a Build with a FakeExecutor and a FakeJobSource."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from alloy_runner.build import attempts
from alloy_runner.build.job import Cache, Dependency, GitInfo, Job, Variable
from alloy_runner.build.states import BuildStage, BuildState, FailureReason
from alloy_runner.config.model import ExecutorName, RunnerConfig
from alloy_runner.exceptions import ExecutorError
from alloy_runner.executors.base import ScriptResult
from tests.build.test_build import Rig, advances
from tests.support.fakes import Act, Run, exits, in_turn, make_job, raises, times_out

S = BuildStage
REPO = GitInfo(repo_url="https://git.test/p.git")
RETRYING = "WARNING: Retrying..."


def job_with(*variables: tuple[str, str], **fields: Any) -> Job:
    fields.setdefault("git_info", REPO)
    return make_job(variables=tuple(Variable(k, v) for k, v in variables), **fields)


class Waits:
    """Stands for the wait between attempts: records each, never sleeps."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    async def __call__(self, seconds: float, stop: asyncio.Event) -> bool:
        self.seconds.append(seconds)
        return not stop.is_set()


def rigged(tmp_path: Path, job: Job, script: Mapping[BuildStage, Act]) -> tuple[Rig, Waits]:
    rig = Rig(tmp_path, job, script)
    waits = Waits()
    rig.build.pause = waits
    return rig, waits


# --- get_sources ---------------------------------------------------------------------------


def test_get_sources_failing_twice_succeeds_on_the_third_of_three_attempts(tmp_path: Path) -> None:
    job = job_with(("GET_SOURCES_ATTEMPTS", "3"))
    rig, waits = rigged(tmp_path, job, {S.GET_SOURCES: in_turn(exits(1), exits(1), exits(0))})
    result = rig.run()
    assert result.state is BuildState.SUCCESS
    assert rig.executor.stages() == [S.GET_SOURCES] * 3 + [S.BUILD_SCRIPT]
    assert rig.log.count(RETRYING) == 2
    assert waits.seconds == [5.0, 10.0]  # FF_USE_EXPONENTIAL_BACKOFF_STAGE_RETRY, GitLab's default
    bodies = [run.body for run in rig.executor.runs[:3]]
    # The second attempt first deletes what the failed fetch left, as GitLab's does; no other.
    assert ["Deleting tracked and untracked files" in body for body in bodies] == [
        False,
        True,
        False,
    ]


def test_get_sources_failing_twice_fails_the_job_with_two_attempts(tmp_path: Path) -> None:
    job = job_with(("GET_SOURCES_ATTEMPTS", "2"))
    rig, waits = rigged(tmp_path, job, {S.GET_SOURCES: in_turn(exits(1), exits(1), exits(0))})
    result = rig.run()
    assert (result.state, result.failure_reason, result.exit_code) == (
        BuildState.FAILED,
        FailureReason.SCRIPT_FAILURE,
        1,
    )
    assert rig.executor.stages() == [S.GET_SOURCES] * 2
    assert rig.log.count(RETRYING) == 1
    assert waits.seconds == [5.0]


def test_without_the_variable_a_stage_runs_once(tmp_path: Path) -> None:
    rig, waits = rigged(tmp_path, job_with(), {S.GET_SOURCES: exits(1)})
    result = rig.run()
    assert result.state is BuildState.FAILED
    assert rig.executor.stages() == [S.GET_SOURCES]
    assert RETRYING not in rig.log
    assert waits.seconds == []


def test_the_backoff_flag_off_waits_one_second_doubling_up_to_five(tmp_path: Path) -> None:
    job = job_with(
        ("GET_SOURCES_ATTEMPTS", "6"), ("FF_USE_EXPONENTIAL_BACKOFF_STAGE_RETRY", "false")
    )
    rig, waits = rigged(tmp_path, job, {S.GET_SOURCES: exits(1)})
    rig.run()
    assert rig.executor.stages() == [S.GET_SOURCES] * 6
    assert waits.seconds == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_the_exponential_backoff_is_capped_at_five_minutes() -> None:
    delays = attempts.Attempts().delays()
    assert [next(delays) for _ in range(9)] == [5, 10, 20, 40, 80, 160, 300, 300, 300]


@pytest.mark.parametrize(
    ("value", "runs", "warning"),
    [
        ("abc", 1, 'GET_SOURCES_ATTEMPTS: expected int got "abc", using default value: 1'),
        ("2.5", 1, 'GET_SOURCES_ATTEMPTS: expected int got "2.5", using default value: 1'),
        (
            "0",
            1,
            "GET_SOURCES_ATTEMPTS: number of attempts out of the range [1, 10], clamping to: 1",
        ),
        (
            "-4",
            1,
            "GET_SOURCES_ATTEMPTS: number of attempts out of the range [1, 10], clamping to: 1",
        ),
        (
            "99",
            10,
            "GET_SOURCES_ATTEMPTS: number of attempts out of the range [1, 10], clamping to: 10",
        ),
    ],
)
def test_an_invalid_value_is_warned_about_and_replaced_as_gitlab_does(
    tmp_path: Path, value: str, runs: int, warning: str
) -> None:
    """GitLab Runner does not fail the job: it warns at the start of the log, then uses the
    default (not an integer) or the nearest bound (out of [1, 10])."""
    rig, _ = rigged(tmp_path, job_with(("GET_SOURCES_ATTEMPTS", value)), {S.GET_SOURCES: exits(1)})
    result = rig.run()
    assert result.state is BuildState.FAILED
    assert rig.executor.stages() == [S.GET_SOURCES] * runs
    assert f"WARNING: {warning}" in rig.log
    assert rig.log.index(warning) < rig.log.index(RETRYING if runs > 1 else "ERROR: Job failed")


def test_a_value_from_config_toml_environment_counts_and_the_jobs_wins(tmp_path: Path) -> None:
    runner = RunnerConfig(name="r1", environment=("GET_SOURCES_ATTEMPTS=3",))
    assert attempts.settings(job_with(), runner).of(S.GET_SOURCES) == 3
    job = job_with(("GET_SOURCES_ATTEMPTS", "2"))
    assert attempts.settings(job, runner).of(S.GET_SOURCES) == 2


def test_a_reference_in_the_value_is_expanded_as_gitlab_does() -> None:
    job = job_with(("RETRIES", "4"), ("GET_SOURCES_ATTEMPTS", "${RETRIES}"))
    assert attempts.settings(job, RunnerConfig(name="r1")).of(S.GET_SOURCES) == 4


def test_a_timed_out_get_sources_is_not_retried(tmp_path: Path) -> None:
    rig, waits = rigged(
        tmp_path, job_with(("GET_SOURCES_ATTEMPTS", "3")), {S.GET_SOURCES: times_out()}
    )
    result = rig.run()
    assert result.state is BuildState.TIMEDOUT
    assert rig.executor.stages() == [S.GET_SOURCES]
    assert waits.seconds == []


def test_a_wait_ends_with_the_jobs_time_and_the_job_times_out(tmp_path: Path) -> None:
    job = job_with(("GET_SOURCES_ATTEMPTS", "3"), timeout=3)
    rig = Rig(tmp_path, job, {S.GET_SOURCES: exits(1)})
    waited: list[float] = []

    async def waits_on_the_clock(seconds: float, stop: asyncio.Event) -> bool:
        waited.append(seconds)
        rig.clock.now += seconds
        return True

    rig.build.pause = waits_on_the_clock
    result = rig.run()
    assert waited == [3.0]  # not GitLab's 5 s: the job had 3 s left
    assert (result.state, result.failure_reason) == (
        BuildState.TIMEDOUT,
        FailureReason.JOB_EXECUTION_TIMEOUT,
    )
    assert rig.executor.stages() == [S.GET_SOURCES]


def test_a_cancel_while_waiting_between_attempts_ends_the_job_canceled(tmp_path: Path) -> None:
    rig = Rig(tmp_path, job_with(("GET_SOURCES_ATTEMPTS", "3")), {S.GET_SOURCES: exits(1)})

    async def canceled_meanwhile(seconds: float, stop: asyncio.Event) -> bool:
        rig.build.cancel()
        return await attempts.pause(seconds, stop)  # the real wait: it ends at the stop

    rig.build.pause = canceled_meanwhile
    result = rig.run()
    assert (result.state, result.failure_reason) == (
        BuildState.CANCELED,
        FailureReason.JOB_CANCELED,
    )
    assert rig.executor.stages() == [S.GET_SOURCES]


def test_each_attempt_is_timed_and_the_result_sums_them(tmp_path: Path) -> None:
    """Each attempt is one observation of the stage histogram (GitLab observes each run of a
    stage); the result's duration of the stage is the time of all its attempts."""
    rig, _ = rigged(tmp_path, job_with(("GET_SOURCES_ATTEMPTS", "3")), {})

    def step(code: int) -> Act:
        async def act(run: Run) -> ScriptResult:
            rig.clock.now += 2.0
            return await exits(code)(run)

        return act

    rig.executor.script[S.GET_SOURCES] = in_turn(step(1), step(0))
    result = rig.run()
    observed = [m.seconds for m in rig.metrics.stages if m.stage is S.GET_SOURCES]
    assert observed == [2.0, 2.0]
    assert result.stage_durations[S.GET_SOURCES] == 4.0


# --- restore_cache and download_artifacts -----------------------------------------------------


def test_restore_cache_failing_in_the_executor_is_retried(tmp_path: Path) -> None:
    job = job_with(("RESTORE_CACHE_ATTEMPTS", "3"), cache=(Cache(key="k", paths=("v",)),))
    gone = ExecutorError("the Docker engine failed the restore_cache stage: gone")
    script = {S.RESTORE_CACHE: in_turn(raises(gone), raises(gone), exits(0))}
    rig, waits = rigged(tmp_path, job, script)
    result = rig.run()
    assert result.state is BuildState.SUCCESS
    assert rig.executor.stages()[1:5] == [S.RESTORE_CACHE] * 3 + [S.BUILD_SCRIPT]
    assert rig.log.count(RETRYING) == 2
    assert len(waits.seconds) == 2


def test_restore_cache_failing_in_the_executor_on_its_last_attempt_fails_the_job(
    tmp_path: Path,
) -> None:
    job = job_with(("RESTORE_CACHE_ATTEMPTS", "2"), cache=(Cache(key="k", paths=("v",)),))
    gone = ExecutorError("gone")
    rig, _ = rigged(tmp_path, job, {S.RESTORE_CACHE: raises(gone)})
    result = rig.run()
    assert (result.state, result.failure_reason) == (
        BuildState.FAILED,
        FailureReason.RUNNER_SYSTEM_FAILURE,
    )
    assert rig.executor.stages() == [S.GET_SOURCES] + [S.RESTORE_CACHE] * 2


def test_a_cache_that_fails_to_extract_is_a_warning_not_retried(tmp_path: Path) -> None:
    """As in GitLab, whose cache-extractor failure is a warning inside a stage that succeeds."""
    job = job_with(("RESTORE_CACHE_ATTEMPTS", "3"), cache=(Cache(key="k", paths=("v",)),))
    rig, waits = rigged(tmp_path, job, {S.RESTORE_CACHE: exits(1)})
    result = rig.run()
    assert result.state is BuildState.SUCCESS
    assert rig.executor.stages().count(S.RESTORE_CACHE) == 1
    assert "WARNING: Failed to extract cache" in rig.log
    assert waits.seconds == []


def test_download_artifacts_failing_twice_succeeds_on_the_third_attempt(tmp_path: Path) -> None:
    job = job_with(("ARTIFACT_DOWNLOAD_ATTEMPTS", "3"), dependencies=(Dependency(3, "build"),))
    script = {S.DOWNLOAD_ARTIFACTS: in_turn(exits(1), exits(1), exits(0))}
    rig, _ = rigged(tmp_path, job, script)
    rig.source.artifacts[3] = b"zip of 3"
    result = rig.run()
    assert result.state is BuildState.SUCCESS
    assert rig.executor.stages()[-4:] == [S.DOWNLOAD_ARTIFACTS] * 3 + [S.BUILD_SCRIPT]
    assert rig.log.count(RETRYING) == 2


def test_download_artifacts_spent_fails_with_its_failure_reason_fetching_each_time(
    tmp_path: Path,
) -> None:
    job = job_with(("ARTIFACT_DOWNLOAD_ATTEMPTS", "2"), dependencies=(Dependency(3, "build"),))
    rig, _ = rigged(tmp_path, job, {})
    rig.source.fetch_error = "502 bad gateway"
    result = rig.run()
    assert (result.state, result.failure_reason) == (
        BuildState.FAILED,
        FailureReason.RUNNER_EXTERNAL_DEPENDENCY_FAILURE,
    )
    assert rig.log.count("ERROR: Downloading artifacts failed: 502 bad gateway") == 2
    assert rig.log.count(RETRYING) == 1
    assert S.BUILD_SCRIPT not in rig.executor.stages()


def counting_fetches(rig: Rig) -> list[int]:
    """Record each dependency the build fetches: download_artifacts' script fetches them all."""
    fetched: list[int] = []
    fetch = rig.source.fetch_artifacts

    async def counted(job: Job, dependency: Dependency, dest: Path) -> bool:
        fetched.append(dependency.id)
        return await fetch(job, dependency, dest)

    rig.source.fetch_artifacts = counted  # type: ignore[method-assign]
    return fetched


def test_no_attempt_is_announced_or_prepared_once_the_jobs_time_is_spent(tmp_path: Path) -> None:
    """The job's time ran out while the first attempt ran (it still exited 1): the stage times
    out there, without `Retrying...` and without fetching every dependency again."""
    job = job_with(
        ("ARTIFACT_DOWNLOAD_ATTEMPTS", "3"), dependencies=(Dependency(3, "build"),), timeout=60
    )
    rig, waits = rigged(tmp_path, job, {})
    rig.executor.script[S.DOWNLOAD_ARTIFACTS] = advances(rig.clock, 61.0, exits(1))
    rig.source.artifacts[3] = b"zip of 3"
    fetched = counting_fetches(rig)
    result = rig.run()
    assert (result.state, result.failure_reason) == (
        BuildState.TIMEDOUT,
        FailureReason.JOB_EXECUTION_TIMEOUT,
    )
    assert fetched == [3]
    assert RETRYING not in rig.log
    assert waits.seconds == []
    assert rig.executor.stages().count(S.DOWNLOAD_ARTIFACTS) == 1


def test_a_wait_that_spends_the_jobs_time_prepares_no_further_attempt(tmp_path: Path) -> None:
    job = job_with(
        ("ARTIFACT_DOWNLOAD_ATTEMPTS", "3"), dependencies=(Dependency(3, "build"),), timeout=3
    )
    rig = Rig(tmp_path, job, {S.DOWNLOAD_ARTIFACTS: exits(1)})
    rig.source.artifacts[3] = b"zip of 3"
    fetched = counting_fetches(rig)

    async def waits_on_the_clock(seconds: float, stop: asyncio.Event) -> bool:
        rig.clock.now += seconds
        return True

    rig.build.pause = waits_on_the_clock
    result = rig.run()
    assert result.state is BuildState.TIMEDOUT
    assert fetched == [3]  # not again after the wait: the job had no time left for it
    assert rig.log.count(RETRYING) == 1


def test_a_cancel_during_an_attempt_ends_the_stage_without_another(tmp_path: Path) -> None:
    """The attempt exited 1 as the job was canceled: no `Retrying...`, no new download."""
    job = job_with(("ARTIFACT_DOWNLOAD_ATTEMPTS", "3"), dependencies=(Dependency(3, "build"),))
    rig, waits = rigged(tmp_path, job, {})

    async def canceled_then_fails(run: Run) -> ScriptResult:
        rig.build.cancel()
        return await exits(1)(run)

    rig.executor.script[S.DOWNLOAD_ARTIFACTS] = canceled_then_fails
    rig.source.artifacts[3] = b"zip of 3"
    fetched = counting_fetches(rig)
    result = rig.run()
    assert (result.state, result.failure_reason) == (
        BuildState.CANCELED,
        FailureReason.JOB_CANCELED,
    )
    assert fetched == [3]
    assert RETRYING not in rig.log
    assert waits.seconds == []


def test_the_build_script_is_never_retried_by_these_variables(tmp_path: Path) -> None:
    job = job_with(*((name, "3") for name in attempts.VARIABLES.values()))
    rig, _ = rigged(tmp_path, job, {S.BUILD_SCRIPT: exits(1)})
    rig.run()
    assert rig.executor.stages().count(S.BUILD_SCRIPT) == 1


def test_executor_job_section_attempts_is_read_and_clamped() -> None:
    runner = RunnerConfig(name="r1", executor=ExecutorName.DOCKER)
    read = attempts.settings(job_with(("EXECUTOR_JOB_SECTION_ATTEMPTS", "12")), runner)
    assert read.section == 10
    assert read.warnings == (
        "WARNING: EXECUTOR_JOB_SECTION_ATTEMPTS: number of attempts out of the range [1, 10], "
        "clamping to: 10",
    )


def test_executor_job_section_attempts_on_a_shell_runner_is_said_to_change_nothing() -> None:
    """GitLab's shell executor ignores it silently; here the job's log says so."""
    job = job_with(("EXECUTOR_JOB_SECTION_ATTEMPTS", "3"))
    shell = attempts.settings(job, RunnerConfig(name="r1"))
    assert shell.warnings == (
        "WARNING: EXECUTOR_JOB_SECTION_ATTEMPTS: only the docker executors run a section again "
        "(when its container was removed); the shell executor has no such failure, so it "
        "changes nothing here",
    )
    docker = attempts.settings(job, RunnerConfig(name="r1", executor=ExecutorName.DOCKER))
    assert (docker.section, docker.warnings) == (3, ())
