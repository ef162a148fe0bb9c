"""A Build runs one job's stages in order on an executor and reports what happened.

`BuildResult` (build/states.py) and `BuildPaths` (build/environment.py) are imported from here too.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from alloy_runner.build import attempts, operator, script
from alloy_runner.build.downloads import download_script
from alloy_runner.build.environment import (
    BuildPaths,
    BuildPlace,
    footer_line,
    header_lines,
    job_environment,
    job_status,
    wanted_artifacts,
)
from alloy_runner.build.joblog import JobLog
from alloy_runner.build.ports import NoJobSpan, NoTracer
from alloy_runner.build.states import (
    STAGE_FAILURE,
    STOP_FAILURE,
    BuildResult,
    BuildStage,
    BuildState,
    ExecutorStage,
    FailureReason,
)
from alloy_runner.cache import remote as remote_cache
from alloy_runner.exceptions import ArtifactsError
from alloy_runner.executors.base import Outcome, ScriptResult, Workspace

if TYPE_CHECKING:
    from alloy_runner.build.job import Cache, Job
    from alloy_runner.build.ports import BuildMetrics, BuildTracer, JobSpan
    from alloy_runner.config.model import RunnerConfig
    from alloy_runner.coordinator.base import JobSource
    from alloy_runner.executors.base import Executor

__all__ = ["AFTER_SCRIPT_TIMEOUT", "Build", "BuildPaths", "BuildResult"]
log = logging.getLogger(__name__)

AFTER_SCRIPT_TIMEOUT = 300  # seconds, GitLab Runner's default for after_script


class Build:
    """One job, from the moment a runner takes it to the moment it is reported done."""

    def __init__(
        self,
        job: Job,
        runner: RunnerConfig,
        *,
        executor: Executor,
        source: JobSource,
        metrics: BuildMetrics,
        paths: BuildPaths,
        slot: int = 0,
        clock: Callable[[], float] = time.monotonic,
        tracer: BuildTracer | None = None,
    ) -> None:
        self.job = job
        self.runner_config = runner
        self.runner = runner.name
        self.executor = executor
        self.source = source
        self.metrics = metrics
        self.tracer: BuildTracer = tracer if tracer is not None else NoTracer()
        self._span: JobSpan = NoJobSpan()
        self.paths = paths
        self.slot = slot
        self._clock = clock
        self.started_at = clock()
        self.state = BuildState.PENDING
        self.stage = BuildStage.PREPARE_SCRIPT
        self.executor_stage = ExecutorStage.CREATED
        self._stop = asyncio.Event()  # any stop: the main stages end
        self._terminate = asyncio.Event()  # forceful shutdown: after_script and uploads end too
        self._stop_state: BuildState | None = None
        self._stage_durations: dict[BuildStage, float] = {}
        self._remote = remote_cache.for_runner(runner)  # the distributed cache, if any
        self.attempts, self.pause = attempts.settings(job, runner), attempts.pause
        self.trace = JobLog(
            (*job.masked_values, *([job.token] if job.token else [])),
            runner.output_limit * 1024,
            on_sink_error=self._log_failed,
        )

    # --- what others see -------------------------------------------------------------

    @property
    def duration(self) -> float:
        return self._clock() - self.started_at

    @property
    def project(self) -> str:
        return self.job.project_name or f"project-{self.job.project_id}"

    @property
    def project_dir(self) -> Path:
        return self.paths.builds_root / self.runner / str(self.slot) / self.project

    def cancel(self, state: BuildState = BuildState.CANCELED) -> None:
        """Stop the build: CANCELED at the source's request, TERMINATED at forceful shutdown."""
        if self._stop_state is None or state is BuildState.TERMINATED:
            self._stop_state = state
        self._stop.set()
        if state is BuildState.TERMINATED:
            self._terminate.set()

    def _log_failed(self, exc: OSError) -> None:
        """The job's log cannot be written (a full disk): the job fails as a system failure."""
        log.error("job %d: its log cannot be written (%s); the job fails", self.job.id, exc)
        self.cancel(BuildState.FAILED)

    def _set_executor_stage(self, stage: ExecutorStage) -> None:
        self.executor_stage = stage

    # --- running -----------------------------------------------------------------------

    async def run(self) -> BuildResult:
        """Run every stage and report the result to the source; never raises."""
        self.trace.add_sink(self.source.trace_sink(self.job))
        self.state = BuildState.RUNNING
        token = self.runner_config.token
        self._span = self.tracer.job_started(
            self.runner,
            self.job,
            url=self.source.job_url(self.job),
            worker_id=token[:8] if token else "",  # the short token, as GitLab shows it
        )
        watcher = asyncio.create_task(self._watch_cancel())
        result = BuildResult(BuildState.FAILED, FailureReason.UNKNOWN_FAILURE, 0.0)
        try:
            await self.source.started(self.job)
            state, reason, exit_code = await self._run_stages()
            result = BuildResult(
                state, reason, self.duration, dict(self._stage_durations), exit_code
            )
        except Exception:
            log.error("job %d: the runner failed while running it", self.job.id, exc_info=True)
            self.trace.write_line("ERROR: Job failed (system failure): internal runner error")
            result = BuildResult(
                BuildState.FAILED,
                FailureReason.RUNNER_SYSTEM_FAILURE,
                self.duration,
                dict(self._stage_durations),
            )
        finally:
            watcher.cancel()
            self.executor_stage = ExecutorStage.FINISH
            self.state = result.state
            self.trace.close()
            self._span.finished(result.state, result.failure_reason)  # before its run's span
            try:
                await self.source.finish(self.job, result)
            except Exception:
                log.error("job %d: could not record its result", self.job.id, exc_info=True)
            outcome = (result.state, result.failure_reason, result.duration)
            self.metrics.job_finished(self.runner, *outcome, trace=self._span.traceparent())
        return result

    async def _watch_cancel(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await self.source.watch_cancel(self.job)
            self.trace.write_line("\nERROR: Job was canceled")
            self.cancel(BuildState.CANCELED)

    def _remaining(self) -> float:
        return max(0.0, self.job.timeout - self.duration)

    async def _run_stages(self) -> tuple[BuildState, FailureReason | None, int | None]:
        for line in (*header_lines(self.runner, self.executor.name), *self.attempts.warnings):
            self.trace.write_line(line)
        self.stage = BuildStage.PREPARE_SCRIPT
        began = self._clock()
        self._span.stage_started(BuildStage.PREPARE_SCRIPT)
        try:
            operator.feature_flags_at_start(self.job, self.runner_config, self.trace.write_line)
            workspace = await self.executor.prepare(
                self.project_dir, self._set_executor_stage, job=self.job, output=self.trace.write
            )
        except Exception as exc:
            log.error("job %d: executor could not prepare: %s", self.job.id, exc)
            self.trace.write_line(f"ERROR: Preparation failed: {exc}")
            return BuildState.FAILED, FailureReason.of(exc), None
        try:
            return await self._run_in(workspace, began)
        finally:
            await self.executor.cleanup(self._set_executor_stage)
            self.metrics.job_resources(self.runner, self.executor.name, self.executor.usage())

    async def _run_in(
        self, workspace: Workspace, began: float
    ) -> tuple[BuildState, FailureReason | None, int | None]:
        env = self._environment(workspace)
        self._finish_stage(BuildStage.PREPARE_SCRIPT, began)
        state, reason, exit_code = BuildState.SUCCESS, None, None
        for stage in (
            BuildStage.GET_SOURCES,
            BuildStage.RESTORE_CACHE,
            BuildStage.DOWNLOAD_ARTIFACTS,
            BuildStage.BUILD_SCRIPT,
        ):
            result = await self._attempts(stage, workspace, env)
            if result is None or result.ok:
                continue
            if stage is BuildStage.RESTORE_CACHE and result.outcome is Outcome.EXITED:
                self.trace.write_line("WARNING: Failed to extract cache")
                continue
            state, reason = self._failure(stage, result)
            exit_code = result.exit_code
            break
        if self._stop_state is not BuildState.TERMINATED:
            await self._after_script(workspace, env, state)
        if state is BuildState.SUCCESS:
            await self._archive_cache(workspace, env)
        if self._stop_state is not BuildState.TERMINATED:
            upload = await self._upload_artifacts(workspace, env, state)
            if not upload and state is BuildState.SUCCESS:
                state, reason = BuildState.FAILED, FailureReason.RUNNER_SYSTEM_FAILURE
        await operator.cleanup(self, workspace, env, self._terminate)
        self.trace.write_line(footer_line(state, reason, exit_code))
        return state, reason, exit_code

    async def _attempts(
        self, stage: BuildStage, workspace: Workspace, env: dict[str, str]
    ) -> ScriptResult | None:
        """Run a stage, again if it fails and its attempts variable asks (build/attempts.py)."""

        async def execute(body: str) -> ScriptResult:
            return await self._run_stage(stage, body, workspace, env, timeout=self._remaining())

        script = functools.partial(self._script_for, stage, workspace)
        run = functools.partial(attempts.run, stage, self.attempts, log=self.trace.write_line)
        return await run(script, execute, stop=self._stop, wait=self.pause, left=self._remaining)

    def _failure(self, stage: BuildStage, result: ScriptResult) -> tuple[BuildState, FailureReason]:
        if result.outcome is Outcome.TIMED_OUT:
            return BuildState.TIMEDOUT, FailureReason.JOB_EXECUTION_TIMEOUT
        if result.outcome is Outcome.CANCELED:
            stop = self._stop_state or BuildState.CANCELED
            return stop, STOP_FAILURE[stop]
        return BuildState.FAILED, STAGE_FAILURE.get(stage, FailureReason.SCRIPT_FAILURE)

    async def _run_stage(
        self,
        stage: BuildStage,
        body: str,
        workspace: Workspace,
        env: dict[str, str],
        *,
        timeout: float | None,
        stop: asyncio.Event | None = None,
    ) -> ScriptResult:
        self.stage = stage
        began = self._clock()
        if (stop if stop is not None else self._stop).is_set():
            return ScriptResult(Outcome.CANCELED)
        if timeout is not None and timeout <= 0:
            return ScriptResult(Outcome.TIMED_OUT)
        self._span.stage_started(stage)
        result: ScriptResult | None = None
        try:
            result = await self.executor.run(
                body,
                workspace=workspace,
                env=env,
                output=self.trace.write,
                timeout=timeout,
                cancel=stop if stop is not None else self._stop,
                stage=stage,
            )
            return result
        finally:
            self.trace.flush()
            self._finish_stage(stage, began, ok=result is not None and result.ok)

    def _finish_stage(self, stage: BuildStage, began: float, ok: bool = True) -> None:
        seconds = self._clock() - began
        self._stage_durations[stage] = self._stage_durations.get(stage, 0.0) + seconds  # attempts
        self.metrics.stage_finished(self.runner, stage, seconds)
        self._span.stage_finished(stage, ok)

    async def _script_for(self, stage: BuildStage, workspace: Workspace) -> str | None:
        job = self.job
        if stage is BuildStage.GET_SOURCES:
            return operator.sources_script(job, self.runner_config, self.trace.write_line)
        if stage is BuildStage.RESTORE_CACHE:
            pulled = [cache for cache in job.cache if cache.policy.pulls]
            files = [script.cache_file(self.paths.cache_root, self.project, c) for c in pulled]
            await self._sync_cache(pulled, push=False)
            return script.extract(files, "cache") if files else None
        if stage is BuildStage.DOWNLOAD_ARTIFACTS:
            return await download_script(job, self.source, workspace, self.trace.write_line)
        return operator.build_script(job, self.runner_config, self.trace.write_line)

    async def _after_script(
        self, workspace: Workspace, env: dict[str, str], state: BuildState
    ) -> None:
        step = self.job.step("after_script")
        if step is None or not step.script:
            return
        self.trace.write_line("Running after_script")
        env = {**env, "CI_JOB_STATUS": job_status(state)}
        # after_script runs even after a cancel or a timeout; only a forceful shutdown stops it.
        result = await self._run_stage(
            BuildStage.AFTER_SCRIPT,
            operator.after_script(self.job, self.runner_config, step.script),
            workspace,
            env,
            timeout=float(min(step.timeout, AFTER_SCRIPT_TIMEOUT)),
            stop=self._terminate,
        )
        if not result.ok:
            self.trace.write_line("WARNING: after_script failed, but the job's result stands")

    async def _archive_cache(self, workspace: Workspace, env: dict[str, str]) -> None:
        caches = [
            cache
            for cache in self.job.cache
            if cache.policy.pushes and (cache.paths or cache.untracked)
        ]
        if not caches:
            return
        body = "".join(
            script.archive_cache(
                script.cache_file(self.paths.cache_root, self.project, cache), cache
            )
            for cache in caches
        )
        result = await self._run_stage(
            BuildStage.ARCHIVE_CACHE, body, workspace, env, timeout=float(AFTER_SCRIPT_TIMEOUT)
        )
        if not result.ok:
            self.trace.write_line("WARNING: Failed to create cache")
        else:
            await self._sync_cache(caches, push=True)

    async def _sync_cache(self, caches: list[Cache], push: bool) -> None:
        """Move caches between the distributed cache and cache_dir (nothing without one)."""
        if self._remote is None or not caches:
            return
        root, project = self.paths.cache_root, self.project
        keyed = [(cache.key, script.cache_file(root, project, cache)) for cache in caches]
        sync = self._remote.upload_all if push else self._remote.download_all
        name = str(self.job.project_id) if self.job.project_id else project  # GitLab's: the id
        await sync(name, keyed, self.trace.write_line, self.metrics)

    async def _upload_artifacts(
        self, workspace: Workspace, env: dict[str, str], state: BuildState
    ) -> bool:
        ok = True
        for index, artifact in enumerate(wanted_artifacts(self.job, state)):
            target = (workspace.archives_dir or workspace.tmp_dir) / f"artifacts-{index}.zip"
            result = await self._run_stage(
                BuildStage.UPLOAD_ARTIFACTS,
                script.archive_artifact(target, artifact),
                workspace,
                env,
                timeout=float(AFTER_SCRIPT_TIMEOUT),
                stop=self._terminate,
            )
            if not result.ok:
                self.trace.write_line("ERROR: Uploading artifacts failed")
                ok = False
            elif target.exists():
                size = target.stat().st_size
                try:
                    await self.source.upload_artifacts(self.job, artifact, target)
                except ArtifactsError as exc:
                    self.trace.write_line(f"ERROR: Uploading artifacts failed: {exc}")
                    ok = False
                    continue
                self.trace.write_line(f"Uploading artifacts: {artifact.name} ({size} bytes)")
        return ok

    # --- the job's environment ---------------------------------------------------------

    def _environment(self, workspace: Workspace) -> dict[str, str]:
        place = BuildPlace(
            runner=self.runner,
            project=self.project,
            builds_root=self.paths.builds_root,
            slot=self.slot,
            job_url=self.source.job_url(self.job),
            environment=self.runner_config.environment,
            feature_flags=self.runner_config.feature_flags,
        )
        return job_environment(self.job, place, workspace, self._span.context_variables())
