"""`Build` in-process through its seams: a FakeExecutor, a FakeJobSource and RecordingMetrics."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from alloy_runner.build.build import AFTER_SCRIPT_TIMEOUT, Build, BuildPaths, BuildResult
from alloy_runner.build.job import (
    Artifact,
    ArtifactWhen,
    Cache,
    CachePolicy,
    Dependency,
    GitInfo,
    Job,
    Variable,
)
from alloy_runner.build.states import BuildStage, BuildState, ExecutorStage, FailureReason
from alloy_runner.config.model import RunnerConfig
from alloy_runner.executors.base import Outcome, ResourceUsage, ScriptResult
from tests.support.fakes import (
    Act,
    FakeExecutor,
    FakeJobSource,
    JobFinished,
    JobResources,
    RecordingMetrics,
    Run,
    exits,
    make_job,
    times_out,
    waits_for_cancel,
    writes_archive,
)

S = BuildStage


class Clock:
    """A monotonic clock that moves only when a test (or a scripted stage) moves it."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Rig:
    """One build of `job` with its fakes; `run()` runs it to the end."""

    def __init__(
        self,
        tmp_path: Path,
        job: Job,
        script: Mapping[BuildStage, Act] | None = None,
        **executor: Any,
    ) -> None:
        self.job = job
        self.clock = Clock()
        self.executor = FakeExecutor(script, **executor)
        self.source = FakeJobSource([job])
        self.metrics = RecordingMetrics()
        self.build = Build(
            job,
            RunnerConfig(name="r1"),
            executor=self.executor,
            source=self.source,
            metrics=self.metrics,
            paths=BuildPaths(tmp_path / "builds", tmp_path / "cache"),
            clock=self.clock,
        )

    def run(self) -> BuildResult:
        return asyncio.run(self.build.run())

    @property
    def log(self) -> str:
        return self.source.log(self.job.id)


def advances(clock: Clock, seconds: float, then: Act | None = None) -> Act:
    """Move `clock` by `seconds` while the stage runs, then end as `then` does (exit 0)."""

    async def act(run: Run) -> ScriptResult:
        clock.now += seconds
        return await (then or exits(0))(run)

    return act


def test_a_passing_job_succeeds_and_reports_once(tmp_path: Path) -> None:
    """A job whose script exits 0 ends in success, reported once to the source and metrics."""
    rig = Rig(tmp_path, make_job(7, ["echo hi"]), {S.BUILD_SCRIPT: exits(0, b"hi\n")})
    result = rig.run()
    assert (result.state, result.failure_reason) == (BuildState.SUCCESS, None)
    assert rig.source.results == {7: result}
    assert rig.source.started_ids == [7]
    assert rig.metrics.finished == [JobFinished("r1", BuildState.SUCCESS, None, result.duration)]
    assert rig.executor.stages() == [S.BUILD_SCRIPT]
    assert (rig.executor.prepared, rig.executor.cleaned) == (1, 1)
    assert "hi\n" in rig.log
    assert rig.log.endswith("Job succeeded\n")
    assert rig.build.state is BuildState.SUCCESS
    assert rig.build.executor_stage is ExecutorStage.FINISH


def test_a_failing_script_fails_with_script_failure_and_its_exit_code(tmp_path: Path) -> None:
    """A build script that exits 3 fails the job as script_failure with exit code 3."""
    rig = Rig(tmp_path, make_job(), {S.BUILD_SCRIPT: exits(3)})
    result = rig.run()
    assert (result.state, result.failure_reason, result.exit_code) == (
        BuildState.FAILED,
        FailureReason.SCRIPT_FAILURE,
        3,
    )
    assert "ERROR: Job failed: exit code 3\n" in rig.log
    assert rig.metrics.finished[0].reason is FailureReason.SCRIPT_FAILURE


def test_a_timed_out_script_ends_as_timedout(tmp_path: Path) -> None:
    """A build script that runs past its timeout ends the job as timedout."""
    rig = Rig(tmp_path, make_job(), {S.BUILD_SCRIPT: times_out()})
    result = rig.run()
    assert (result.state, result.failure_reason) == (
        BuildState.TIMEDOUT,
        FailureReason.JOB_EXECUTION_TIMEOUT,
    )
    assert "ERROR: Job failed: timedout (job_execution_timeout)" in rig.log


def test_time_spent_in_earlier_stages_counts_against_the_job_timeout(tmp_path: Path) -> None:
    """When fetching sources uses up the job's timeout, the build script never starts."""
    job = make_job(timeout=60, git_info=GitInfo(repo_url="https://git.test/p.git"))
    rig = Rig(tmp_path, job)
    rig.executor.script[S.GET_SOURCES] = advances(rig.clock, 61)
    result = rig.run()
    assert result.state is BuildState.TIMEDOUT
    assert rig.executor.stages() == [S.GET_SOURCES]


def test_each_stage_is_timed_with_the_injected_clock(tmp_path: Path) -> None:
    """Stage durations come from the build's clock, per stage, in the result and the metrics."""
    job = make_job(git_info=GitInfo(repo_url="https://git.test/p.git"))
    rig = Rig(tmp_path, job)
    rig.executor.script[S.GET_SOURCES] = advances(rig.clock, 2.0)
    rig.executor.script[S.BUILD_SCRIPT] = advances(rig.clock, 5.0)
    result = rig.run()
    timed = {(m.stage, m.seconds) for m in rig.metrics.stages}
    assert timed == {(S.PREPARE_SCRIPT, 0.0), (S.GET_SOURCES, 2.0), (S.BUILD_SCRIPT, 5.0)}
    assert result.stage_durations == dict(timed)
    assert result.duration == 7.0


def test_a_job_without_a_repository_skips_fetching_sources(tmp_path: Path) -> None:
    """A job with no repo_url runs no get_sources script and says so in its log."""
    rig = Rig(tmp_path, make_job())
    rig.run()
    assert S.GET_SOURCES not in rig.executor.stages()
    assert "Skipping Git repository setup: the job has no repository" in rig.log


def test_a_failed_fetch_of_sources_is_a_script_failure(tmp_path: Path) -> None:
    """A get_sources script that fails ends the job as script_failure; no build script runs."""
    job = make_job(git_info=GitInfo(repo_url="https://git.test/p.git"))
    rig = Rig(tmp_path, job, {S.GET_SOURCES: exits(128)})
    result = rig.run()
    assert (result.state, result.failure_reason) == (
        BuildState.FAILED,
        FailureReason.SCRIPT_FAILURE,
    )
    assert rig.executor.stages() == [S.GET_SOURCES]


def test_an_executor_that_cannot_prepare_is_a_system_failure(tmp_path: Path) -> None:
    """When the executor cannot prepare, the job fails as runner_system_failure, no script runs."""
    rig = Rig(tmp_path, make_job(), prepare_error=RuntimeError("no machine"))
    result = rig.run()
    assert (result.state, result.failure_reason) == (
        BuildState.FAILED,
        FailureReason.RUNNER_SYSTEM_FAILURE,
    )
    assert rig.executor.runs == []
    assert "ERROR: Preparation failed: no machine" in rig.log
    assert rig.executor.cleaned == 0


def test_an_internal_error_is_a_system_failure_still_reported(tmp_path: Path) -> None:
    """An exception inside the runner fails the job as runner_system_failure, and reports it."""

    async def broken(run: Run) -> ScriptResult:
        raise RuntimeError("bug")

    rig = Rig(tmp_path, make_job(), {S.BUILD_SCRIPT: broken})
    result = rig.run()
    assert result.failure_reason is FailureReason.RUNNER_SYSTEM_FAILURE
    assert rig.source.results[1] == result
    assert "internal runner error" in rig.log
    assert rig.executor.cleaned == 1


def test_a_cache_that_cannot_be_extracted_is_only_a_warning(tmp_path: Path) -> None:
    """A failing restore_cache writes a warning and the job goes on to succeed."""
    job = make_job(cache=(Cache(key="k", paths=("vendor",)),))
    rig = Rig(tmp_path, job, {S.RESTORE_CACHE: exits(1)})
    result = rig.run()
    assert result.state is BuildState.SUCCESS
    assert "WARNING: Failed to extract cache" in rig.log
    assert rig.executor.stages() == [S.RESTORE_CACHE, S.BUILD_SCRIPT, S.ARCHIVE_CACHE]


def test_a_pull_only_cache_is_restored_and_never_archived(tmp_path: Path) -> None:
    """`policy: pull` restores the cache before the script and archives nothing after it."""
    job = make_job(cache=(Cache(key="k", paths=("vendor",), policy=CachePolicy.PULL),))
    rig = Rig(tmp_path, job)
    rig.run()
    assert rig.executor.stages() == [S.RESTORE_CACHE, S.BUILD_SCRIPT]


# --- cancel and terminate ----------------------------------------------------------------


def test_a_cancel_at_the_source_ends_the_job_canceled_and_after_script_runs(
    tmp_path: Path,
) -> None:
    """A job canceled at the source while its script runs ends canceled; after_script still runs."""
    rig = Rig(tmp_path, make_job(after_script=["cleanup"]), {S.BUILD_SCRIPT: waits_for_cancel()})

    async def main() -> BuildResult:
        running = asyncio.create_task(rig.build.run())
        await rig.executor.reached(S.BUILD_SCRIPT)
        rig.source.cancel(1)
        return await running

    result = asyncio.run(main())
    assert (result.state, result.failure_reason) == (
        BuildState.CANCELED,
        FailureReason.JOB_CANCELED,
    )
    assert rig.executor.stages() == [S.BUILD_SCRIPT, S.AFTER_SCRIPT]
    assert rig.executor.runs[-1].env["CI_JOB_STATUS"] == "canceled"
    assert "ERROR: Job was canceled" in rig.log


def test_a_forceful_shutdown_ends_the_job_terminated_without_after_script(
    tmp_path: Path,
) -> None:
    """`cancel(TERMINATED)` ends the job as runner_interrupted; after_script does not run."""
    job = make_job(
        after_script=["cleanup"], artifacts=(Artifact(paths=("out",), when=ArtifactWhen.ALWAYS),)
    )
    rig = Rig(tmp_path, job, {S.BUILD_SCRIPT: waits_for_cancel()})

    async def main() -> BuildResult:
        running = asyncio.create_task(rig.build.run())
        await rig.executor.reached(S.BUILD_SCRIPT)
        rig.build.cancel(BuildState.TERMINATED)
        return await running

    result = asyncio.run(main())
    assert (result.state, result.failure_reason) == (
        BuildState.TERMINATED,
        FailureReason.RUNNER_INTERRUPTED,
    )
    assert rig.executor.stages() == [S.BUILD_SCRIPT]
    assert rig.source.uploads == []


# --- after_script ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("script_exit", "status"), [(0, "success"), (1, "failed")], ids=["success", "failed"]
)
def test_after_script_runs_after_the_script_and_sees_the_job_status(
    tmp_path: Path, script_exit: int, status: str
) -> None:
    """after_script runs whatever the script's result, with CI_JOB_STATUS set to it."""
    rig = Rig(tmp_path, make_job(after_script=["echo bye"]), {S.BUILD_SCRIPT: exits(script_exit)})
    rig.run()
    after = rig.executor.runs[-1]
    assert after.stage is S.AFTER_SCRIPT
    assert after.env["CI_JOB_STATUS"] == status
    assert "echo bye" in after.body
    assert "Running after_script" in rig.log


def test_a_failing_after_script_does_not_change_the_result(tmp_path: Path) -> None:
    """A failing after_script leaves a successful job successful, with a warning."""
    rig = Rig(tmp_path, make_job(after_script=["false"]), {S.AFTER_SCRIPT: exits(1)})
    result = rig.run()
    assert result.state is BuildState.SUCCESS
    assert "WARNING: after_script failed, but the job's result stands" in rig.log


def test_after_script_has_at_most_five_minutes(tmp_path: Path) -> None:
    """after_script's timeout is its step's timeout, capped at GitLab Runner's 300 s."""
    rig = Rig(tmp_path, make_job(after_script=["x"]))
    rig.run()
    assert rig.executor.runs[-1].timeout == float(AFTER_SCRIPT_TIMEOUT) == 300.0


# --- artifacts ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("when", "script_exit", "uploaded"),
    [
        ("on_success", 0, True),
        ("on_success", 1, False),
        ("on_failure", 0, False),
        ("on_failure", 1, True),
        ("always", 0, True),
        ("always", 1, True),
    ],
)
def test_artifacts_are_uploaded_according_to_when(
    tmp_path: Path, when: str, script_exit: int, uploaded: bool
) -> None:
    """`artifacts:when` decides from the job's result whether the archive is uploaded."""
    job = make_job(artifacts=(Artifact(name="out", paths=("dist",), when=ArtifactWhen(when)),))
    script = {S.BUILD_SCRIPT: exits(script_exit), S.UPLOAD_ARTIFACTS: writes_archive(b"zip!")}
    rig = Rig(tmp_path, job, script)
    rig.run()
    assert [(u.artifact.name, u.content) for u in rig.source.uploads] == (
        [("out", b"zip!")] if uploaded else []
    )
    assert (S.UPLOAD_ARTIFACTS in rig.executor.stages()) is uploaded


def test_a_refused_upload_fails_a_successful_job(tmp_path: Path) -> None:
    """When the source refuses the artifacts, a successful job fails as runner_system_failure."""
    job = make_job(artifacts=(Artifact(paths=("dist",)),))
    rig = Rig(tmp_path, job, {S.UPLOAD_ARTIFACTS: writes_archive()})
    rig.source.upload_error = "413 too large"
    result = rig.run()
    assert (result.state, result.failure_reason) == (
        BuildState.FAILED,
        FailureReason.RUNNER_SYSTEM_FAILURE,
    )
    assert "ERROR: Uploading artifacts failed: 413 too large" in rig.log


def test_an_archive_script_that_fails_fails_a_successful_job(tmp_path: Path) -> None:
    """When the archive cannot be made, a successful job fails as runner_system_failure."""
    job = make_job(artifacts=(Artifact(paths=("dist",)),))
    rig = Rig(tmp_path, job, {S.UPLOAD_ARTIFACTS: exits(1)})
    result = rig.run()
    assert result.failure_reason is FailureReason.RUNNER_SYSTEM_FAILURE
    assert rig.source.uploads == []


def test_an_upload_problem_keeps_the_failure_of_a_failed_job(tmp_path: Path) -> None:
    """A failed job whose on_failure upload also fails keeps its own failure reason."""
    job = make_job(artifacts=(Artifact(paths=("log",), when=ArtifactWhen.ON_FAILURE),))
    rig = Rig(tmp_path, job, {S.BUILD_SCRIPT: exits(2), S.UPLOAD_ARTIFACTS: exits(1)})
    result = rig.run()
    assert (result.failure_reason, result.exit_code) == (FailureReason.SCRIPT_FAILURE, 2)


def test_artifacts_of_dependencies_are_downloaded_before_the_script(tmp_path: Path) -> None:
    """Dependencies with artifacts are fetched and extracted; those without are named in the log."""
    job = make_job(dependencies=(Dependency(3, "build"), Dependency(4, "lint")))
    rig = Rig(tmp_path, job)
    rig.source.artifacts[3] = b"zip of 3"
    result = rig.run()
    assert result.state is BuildState.SUCCESS
    assert rig.executor.stages() == [S.DOWNLOAD_ARTIFACTS, S.BUILD_SCRIPT]
    download = rig.executor.runs[0]
    assert "dependency-3.zip" in download.body
    assert "dependency-4.zip" not in download.body
    assert (download.workspace.tmp_dir / "dependency-3.zip").read_bytes() == b"zip of 3"
    assert "No artifacts to download from lint (4)" in rig.log


def test_a_failed_download_is_an_external_dependency_failure(tmp_path: Path) -> None:
    """When the source cannot give a dependency's artifacts, the job fails before its script."""
    rig = Rig(tmp_path, make_job(dependencies=(Dependency(3, "build"),)))
    rig.source.fetch_error = "502 bad gateway"
    result = rig.run()
    assert (result.state, result.failure_reason) == (
        BuildState.FAILED,
        FailureReason.RUNNER_EXTERNAL_DEPENDENCY_FAILURE,
    )
    assert S.BUILD_SCRIPT not in rig.executor.stages()
    assert "ERROR: Downloading artifacts failed: 502 bad gateway" in rig.log


# --- the log and the environment ---------------------------------------------------------


def test_masked_values_and_the_job_token_never_reach_the_log(tmp_path: Path) -> None:
    """Masked variable values and the job token are replaced by [MASKED] in the log."""
    job = make_job(variables=(Variable("SECRET", "hunter2-value", masked=True),))
    leak = b"secret=hunter2-value token=job-token-1\n"
    rig = Rig(tmp_path, job, {S.BUILD_SCRIPT: exits(0, leak)})
    rig.run()
    assert "hunter2-value" not in rig.log
    assert "job-token-1" not in rig.log
    assert "secret=[MASKED] token=[MASKED]" in rig.log


def test_scripts_see_the_ci_variables_and_file_variables_as_paths(tmp_path: Path) -> None:
    """Scripts get CI_* variables, job variables, and file variables as paths to their value."""
    job = make_job(
        9, variables=(Variable("PLAIN", "p"), Variable("KEYFILE", "key-content", file=True))
    )
    rig = Rig(tmp_path, job)
    rig.run()
    env = rig.executor.runs[0].env
    assert (env["CI"], env["CI_JOB_ID"], env["PLAIN"]) == ("true", "9", "p")
    assert env["CI_PROJECT_DIR"] == str(rig.executor.runs[0].workspace.project_dir)
    assert Path(env["KEYFILE"]).read_text() == "key-content"


def test_a_result_the_source_cannot_record_is_still_counted(tmp_path: Path) -> None:
    """If the source fails to record the result, the metrics still count the job."""
    rig = Rig(tmp_path, make_job())

    async def refuse(job: Job, result: BuildResult) -> None:
        raise OSError("disk full")

    rig.source.finish = refuse  # type: ignore[method-assign]
    result = rig.run()
    assert result.state is BuildState.SUCCESS
    assert [f.state for f in rig.metrics.finished] == [BuildState.SUCCESS]


def test_outcome_canceled_without_a_stop_is_reported_as_canceled(tmp_path: Path) -> None:
    """An executor reporting a canceled script with no stop requested ends the job canceled."""

    async def canceled(run: Run) -> ScriptResult:
        return ScriptResult(Outcome.CANCELED)

    rig = Rig(tmp_path, make_job(), {S.BUILD_SCRIPT: canceled})
    result = rig.run()
    assert (result.state, result.failure_reason) == (
        BuildState.CANCELED,
        FailureReason.JOB_CANCELED,
    )


def test_the_executors_resource_usage_is_reported_once(tmp_path: Path) -> None:
    """What the executor measured for the build's scripts goes to the metrics once, at the end."""
    used = ResourceUsage(cpu_seconds=1.5, memory_peak_bytes=2048)
    rig = Rig(tmp_path, make_job(), used=used)
    rig.run()
    assert rig.metrics.resources == [JobResources("r1", "fake", used)]
