"""Fakes for the seams of the domain code, for in-process tests (as structlog.testing does).

Each stands where a Protocol of `src/` lets something else stand, records what
it was given, and can be scripted:

- `RecordingMetrics`: `BuildMetrics`, `MachineMetrics` and `ApiMetrics` at once;
  every call is kept, in order, as a small frozen record.
- `FakeExecutor`: an `Executor` whose stage scripts end as a test says
  (`exits`, `times_out`, `waits_for_cancel`, `waits_for`, `writes_archive`,
  `in_turn`, `raises`).
- `make_job`: a job with the steps a test needs.
- `FakeJobSource`: a `JobSource` holding a queue of jobs; it keeps every log
  byte, result and upload, can hold requests, fail artifacts and cancel jobs.

None of them sleeps: waiting is on conditions (`wait_until`, `reached`).
"""

from __future__ import annotations

import asyncio
import shlex
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alloy_runner.build.job import Job, Step
from alloy_runner.build.states import BuildStage, BuildState, ExecutorStage, FailureReason
from alloy_runner.coordinator.api_metrics import Endpoint, TransportFailure
from alloy_runner.exceptions import ArtifactsError
from alloy_runner.executors.base import Outcome, ResourceUsage, ScriptResult, Workspace
from alloy_runner.machines.metrics import MachineEvent

if TYPE_CHECKING:
    from alloy_runner.build.build import BuildResult
    from alloy_runner.build.job import Artifact, Dependency
    from alloy_runner.build.joblog import Sink

WAIT_TIMEOUT = 10.0  # seconds a condition may take before a test fails


class Changes:
    """A notification that something changed; `wait_until` re-checks a predicate on each."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        """Wake every waiter."""
        self._event.set()
        self._event = asyncio.Event()

    async def wait_until(
        self, predicate: Callable[[], bool], timeout: float | None = WAIT_TIMEOUT
    ) -> None:
        """Return once `predicate()` holds; raise TimeoutError after `timeout` seconds."""
        async with asyncio.timeout(timeout):
            while not predicate():
                await self._event.wait()


# --- metrics ---------------------------------------------------------------------------


@dataclass(frozen=True)
class JobPicked:
    """`BuildMetrics.job_picked` as called."""

    runner: str
    queued_seconds: float | None


@dataclass(frozen=True)
class StageFinished:
    """`BuildMetrics.stage_finished` as called."""

    runner: str
    stage: BuildStage
    seconds: float


@dataclass(frozen=True)
class JobFinished:
    """`BuildMetrics.job_finished` as called."""

    runner: str
    state: BuildState
    reason: FailureReason | None
    seconds: float | None


@dataclass(frozen=True)
class JobResources:
    """`BuildMetrics.job_resources` as called."""

    runner: str
    executor: str
    used: ResourceUsage | None


@dataclass(frozen=True)
class ApiCall:
    """`ApiMetrics.request_done` as called."""

    runner: str
    endpoint: Endpoint
    status: int | TransportFailure
    seconds: float


class RecordingMetrics:
    """A BuildMetrics, MachineMetrics and ApiMetrics that keeps every call.

    `calls` holds the build and API records in the order they came; the
    properties filter it. Machine events are counted in `machine_events`, and
    creation durations kept in `creation_seconds`.
    """

    def __init__(self) -> None:
        self.calls: list[JobPicked | StageFinished | JobFinished | JobResources | ApiCall] = []
        self.machine_events: Counter[MachineEvent] = Counter()
        self.creation_seconds: list[float] = []
        self.cache_transfers: list[tuple[str, str, bool, float]] = []
        self.stopping_seconds: list[float] = []
        self.requests_exceeded_by: list[str] = []
        self.retried: list[tuple[str, Endpoint]] = []

    @property
    def picked(self) -> list[JobPicked]:
        """Return the `job_picked` calls."""
        return [c for c in self.calls if isinstance(c, JobPicked)]

    @property
    def stages(self) -> list[StageFinished]:
        """Return the `stage_finished` calls."""
        return [c for c in self.calls if isinstance(c, StageFinished)]

    @property
    def finished(self) -> list[JobFinished]:
        """Return the `job_finished` calls."""
        return [c for c in self.calls if isinstance(c, JobFinished)]

    @property
    def resources(self) -> list[JobResources]:
        """Return the `job_resources` calls."""
        return [c for c in self.calls if isinstance(c, JobResources)]

    @property
    def api_calls(self) -> list[ApiCall]:
        """Return the `request_done` calls."""
        return [c for c in self.calls if isinstance(c, ApiCall)]

    # BuildMetrics
    def job_picked(
        self, runner: str, queued_seconds: float | None, project_jobs_running: str = ""
    ) -> None:
        self.calls.append(JobPicked(runner, queued_seconds))

    def requests_exceeded(self, runner: str) -> None:
        self.requests_exceeded_by.append(runner)

    def stage_finished(self, runner: str, stage: BuildStage, seconds: float) -> None:
        self.calls.append(StageFinished(runner, stage, seconds))

    def job_finished(
        self,
        runner: str,
        state: BuildState,
        reason: FailureReason | None,
        seconds: float | None,
        trace: str | None = None,
    ) -> None:
        self.calls.append(JobFinished(runner, state, reason, seconds))

    def job_resources(self, runner: str, executor: str, used: ResourceUsage | None) -> None:
        self.calls.append(JobResources(runner, executor, used))

    def cache_transfer(self, runner: str, operation: str, ok: bool, seconds: float) -> None:
        self.cache_transfers.append((runner, operation, ok, seconds))

    # MachineMetrics
    def machine_created(self, seconds: float) -> None:
        self.machine_events[MachineEvent.CREATED] += 1
        self.creation_seconds.append(seconds)

    def machine_removed(self, seconds: float | None = None) -> None:
        self.machine_events[MachineEvent.REMOVED] += 1

    def machine_stopped(self, seconds: float) -> None:
        self.stopping_seconds.append(seconds)

    def machine_used(self) -> None:
        self.machine_events[MachineEvent.USED] += 1

    def creation_failed(self, seconds: float | None = None) -> None:
        self.machine_events[MachineEvent.CREATION_FAILED] += 1

    # ApiMetrics
    def request_done(
        self, runner: str, endpoint: Endpoint, status: int | TransportFailure, seconds: float
    ) -> None:
        self.calls.append(ApiCall(runner, endpoint, status, seconds))

    def request_retried(self, runner: str, endpoint: Endpoint) -> None:
        self.retried.append((runner, endpoint))


# --- executor --------------------------------------------------------------------------


@dataclass
class Run:
    """One stage script the FakeExecutor was asked to run, with what it was given."""

    stage: BuildStage
    body: str
    env: Mapping[str, str]
    timeout: float | None
    workspace: Workspace
    output: Callable[[bytes], None]
    cancel: asyncio.Event
    result: ScriptResult | None = None


Act = Callable[[Run], Awaitable[ScriptResult]]
"""What a scripted stage does: given the run, return how its script ended."""


def exits(code: int = 0, output: bytes = b"") -> Act:
    """Write `output` to the job log and exit with `code`."""

    async def act(run: Run) -> ScriptResult:
        if output:
            run.output(output)
        return ScriptResult(Outcome.EXITED, code)

    return act


def times_out() -> Act:
    """End as the executor does when the stage's timeout passes."""

    async def act(run: Run) -> ScriptResult:
        return ScriptResult(Outcome.TIMED_OUT)

    return act


def waits_for_cancel() -> Act:
    """Run until the build's stop event is set, then end as canceled."""

    async def act(run: Run) -> ScriptResult:
        await run.cancel.wait()
        return ScriptResult(Outcome.CANCELED)

    return act


def waits_for(release: asyncio.Event, code: int = 0) -> Act:
    """Run until `release` is set (then exit with `code`) or the build stops (canceled)."""

    async def act(run: Run) -> ScriptResult:
        done, _ = await asyncio.wait(
            [asyncio.create_task(release.wait()), asyncio.create_task(run.cancel.wait())],
            return_when=asyncio.FIRST_COMPLETED,
        )
        for task in done:
            task.cancel()
        if release.is_set():
            return ScriptResult(Outcome.EXITED, code)
        return ScriptResult(Outcome.CANCELED)

    return act


def in_turn(*acts: Act) -> Act:
    """Do `acts` one per run of the stage, in order; the last one again after that."""
    runs = 0

    async def act(run: Run) -> ScriptResult:
        nonlocal runs
        runs += 1
        return await acts[min(runs, len(acts)) - 1](run)

    return act


def raises(error: Exception) -> Act:
    """Raise `error`, as an executor does when it cannot run the stage (its engine failed)."""

    async def act(run: Run) -> ScriptResult:
        raise error

    return act


def writes_archive(content: bytes = b"PK\x05\x06" + b"\0" * 18) -> Act:
    """Write `content` to the `--file` the archive script names (an empty zip), exit 0."""

    async def act(run: Run) -> ScriptResult:
        words = shlex.split(run.body.splitlines()[-1])
        target = Path(words[words.index("--file") + 1])
        if not target.is_absolute():
            target = run.workspace.project_dir / target
        target.write_bytes(content)
        return ScriptResult(Outcome.EXITED, 0)

    return act


class FakeExecutor:
    """An Executor whose stages end as scripted; it records every run in `runs`.

    `script` maps a stage to what its script does; stages not in it exit 0.
    `prepare_error`, when set, is raised by `prepare`, as a machine executor
    does when it has no machine. `used`, when set, is what `usage` reports.
    """

    name = "fake"

    def __init__(
        self,
        script: Mapping[BuildStage, Act] | None = None,
        *,
        prepare_error: Exception | None = None,
        used: ResourceUsage | None = None,
    ) -> None:
        self.script = dict(script or {})
        self.prepare_error = prepare_error
        self.used = used
        self.jobs: list[Job | None] = []
        self.runs: list[Run] = []
        self.prepared = 0
        self.cleaned = 0
        self.changes = Changes()

    def stages(self) -> list[BuildStage]:
        """Return the stages run so far, in order."""
        return [run.stage for run in self.runs]

    async def reached(self, stage: BuildStage, timeout: float = WAIT_TIMEOUT) -> Run:
        """Return the first run of `stage`, waiting for it to start."""
        await self.changes.wait_until(lambda: stage in self.stages(), timeout)
        return next(run for run in self.runs if run.stage is stage)

    async def prepare(
        self,
        workspace_hint: Path,
        set_stage: Callable[[ExecutorStage], None],
        *,
        job: Job | None = None,
        output: Callable[[bytes], None] | None = None,
    ) -> Workspace:
        set_stage(ExecutorStage.PREPARE)
        self.prepared += 1
        self.jobs.append(job)
        if self.prepare_error is not None:
            raise self.prepare_error
        tmp = workspace_hint.with_name(workspace_hint.name + ".tmp")
        workspace_hint.mkdir(parents=True, exist_ok=True)
        tmp.mkdir(parents=True, exist_ok=True)
        return Workspace(project_dir=workspace_hint, tmp_dir=tmp)

    async def run(
        self,
        script: str,
        *,
        workspace: Workspace,
        env: Mapping[str, str],
        output: Callable[[bytes], None],
        timeout: float | None,
        cancel: asyncio.Event,
        stage: BuildStage = BuildStage.BUILD_SCRIPT,
    ) -> ScriptResult:
        run = Run(stage, script, dict(env), timeout, workspace, output, cancel)
        self.runs.append(run)
        self.changes.notify()
        if script.strip() == "exit 1":  # what a build runs for a stage that already failed
            run.result = ScriptResult(Outcome.EXITED, 1)
        else:
            run.result = await self.script.get(stage, exits(0))(run)
        self.changes.notify()
        return run.result

    async def cleanup(self, set_stage: Callable[[ExecutorStage], None]) -> None:
        set_stage(ExecutorStage.CLEANUP)
        self.cleaned += 1
        self.changes.notify()

    def usage(self) -> ResourceUsage | None:
        return self.used


# --- jobs and their source ------------------------------------------------------------------------


def make_job(
    job_id: int = 1,
    script: Iterable[str] = ("true",),
    *,
    after_script: Iterable[str] = (),
    **fields: Any,
) -> Job:
    """Return a job with a `script` step (and an `after_script` step when given).

    `fields` are the other fields of `Job` (artifacts, cache, dependencies, ...).
    """
    steps = [Step("script", tuple(script))]
    if after_script:
        steps.append(Step("after_script", tuple(after_script)))
    fields.setdefault("project_name", "project")
    return Job(job_id, f"job-token-{job_id}", f"job-{job_id}", "test", steps=tuple(steps), **fields)


@dataclass
class Upload:
    """An artifacts archive a build handed to `FakeJobSource.upload_artifacts`."""

    job_id: int
    artifact: Artifact
    content: bytes


class FakeJobSource:
    """A JobSource with a queue of jobs, that keeps what builds send back.

    `artifacts` maps a dependency's job id to the archive `fetch_artifacts`
    writes (a missing id: the dependency has none). `fetch_error` and
    `upload_error`, when set, are the messages of the ArtifactsError raised.
    Clear `gate` to hold every `request` until it is set again.
    """

    def __init__(
        self,
        jobs: Iterable[Job] = (),
        *,
        artifacts: Mapping[int, bytes] | None = None,
        fetch_error: str = "",
        upload_error: str = "",
    ) -> None:
        self.jobs: deque[Job] = deque(jobs)
        self.artifacts = dict(artifacts or {})
        self.fetch_error = fetch_error
        self.upload_error = upload_error
        self.gate = asyncio.Event()
        self.gate.set()
        self.changes = Changes()
        self.logs: dict[int, bytearray] = {}
        self.started_ids: list[int] = []
        self.results: dict[int, BuildResult] = {}
        self.uploads: list[Upload] = []
        self.requests = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self._canceled: set[int] = set()

    def add(self, *jobs: Job) -> None:
        """Queue `jobs` for the next requests."""
        self.jobs.extend(jobs)
        self.changes.notify()

    def cancel(self, job_id: int) -> None:
        """Cancel a job at the source, as a user would; its `watch_cancel` returns."""
        self._canceled.add(job_id)
        self.changes.notify()

    def log(self, job_id: int) -> str:
        """Return the job's log as sent so far."""
        return self.logs.get(job_id, bytearray()).decode()

    async def wait_until(
        self, predicate: Callable[[], bool], timeout: float = WAIT_TIMEOUT
    ) -> None:
        """Return once `predicate()` holds, re-checked whenever the source changes."""
        await self.changes.wait_until(predicate, timeout)

    async def wait_finished(self, count: int, timeout: float = WAIT_TIMEOUT) -> None:
        """Return once `count` jobs have a result."""
        await self.wait_until(lambda: len(self.results) >= count, timeout)

    # JobSource
    async def request(self) -> Job | None:
        self.requests += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.changes.notify()
        try:
            await self.gate.wait()
            return self.jobs.popleft() if self.jobs else None
        finally:
            self.in_flight -= 1
            self.changes.notify()

    async def wait_for_jobs(self, timeout: float) -> None:
        try:
            await self.changes.wait_until(lambda: bool(self.jobs), timeout)
        except TimeoutError:
            return

    def job_url(self, job: Job) -> str:
        return f"https://coordinator.test/jobs/{job.id}"

    def trace_sink(self, job: Job) -> Sink:
        log = self.logs.setdefault(job.id, bytearray())
        return log.extend

    async def started(self, job: Job) -> None:
        self.started_ids.append(job.id)
        self.changes.notify()

    async def watch_cancel(self, job: Job) -> None:
        await self.changes.wait_until(lambda: job.id in self._canceled, timeout=None)

    async def fetch_artifacts(self, job: Job, dependency: Dependency, dest: Path) -> bool:
        if self.fetch_error:
            raise ArtifactsError(self.fetch_error)
        if dependency.id not in self.artifacts:
            return False
        dest.write_bytes(self.artifacts[dependency.id])
        return True

    async def upload_artifacts(self, job: Job, artifact: Artifact, archive: Path) -> None:
        if self.upload_error:
            raise ArtifactsError(self.upload_error)
        self.uploads.append(Upload(job.id, artifact, archive.read_bytes()))

    async def finish(self, job: Job, result: BuildResult) -> None:
        self.results[job.id] = result
        self.changes.notify()


if TYPE_CHECKING:  # mypy checks that each fake is what it stands for
    from alloy_runner.build.ports import BuildMetrics
    from alloy_runner.coordinator.api_metrics import ApiMetrics
    from alloy_runner.coordinator.base import JobSource
    from alloy_runner.executors.base import Executor
    from alloy_runner.machines.metrics import MachineMetrics

    _BUILD: BuildMetrics = RecordingMetrics()
    _MACHINE: MachineMetrics = RecordingMetrics()
    _API: ApiMetrics = RecordingMetrics()
    _EXECUTOR: Executor = FakeExecutor()
    _SOURCE: JobSource = FakeJobSource()
