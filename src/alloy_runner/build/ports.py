"""The Protocols a build needs from outside: metrics and tracing; telemetry implements them.

Tests record through the same seams (tests/support/fakes.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from alloy_runner.build.states import BuildStage, BuildState, FailureReason

if TYPE_CHECKING:
    from alloy_runner.build.job import Job
    from alloy_runner.executors.base import ResourceUsage

TRACEPARENT = "TRACEPARENT"  # the job variable that joins a trace, and the one scripts see
# The job variable naming the spool pipeline-run span a job's span is a child of.
PIPELINE_TRACEPARENT = "ALLOY_PIPELINE_TRACEPARENT"


class BuildMetrics(Protocol):
    """Events of a build, recorded when they happen."""

    def job_picked(
        self, runner: str, queued_seconds: float | None, project_jobs_running: str = ""
    ) -> None:
        """A runner took a job that waited `queued_seconds` in the queue (None: unknown).

        `project_jobs_running` is what the coordinator says of the project's running jobs.
        """

    def stage_finished(self, runner: str, stage: BuildStage, seconds: float) -> None:
        """A stage of a build ended after `seconds`."""

    def job_finished(
        self,
        runner: str,
        state: BuildState,
        reason: FailureReason | None,
        seconds: float | None,
        trace: str | None = None,
    ) -> None:
        """A build ended in a final `state` after `seconds` (None: unknown, e.g. recovered).

        `trace` is the W3C traceparent of the job's span, if it was traced.
        """

    def job_resources(self, runner: str, executor: str, used: ResourceUsage | None) -> None:
        """A build's scripts used `used` (None: the executor could not tell; nothing recorded)."""

    def cache_transfer(self, runner: str, operation: str, ok: bool, seconds: float) -> None:
        """A distributed cache `download` or `upload` ended (`ok`: it worked) after `seconds`."""

    def requests_exceeded(self, runner: str) -> None:
        """At a feed, every job request `runner` may make was in flight though it had room."""


class NoMetrics:
    """A BuildMetrics that records nothing (the `exec` command)."""

    def requests_exceeded(self, runner: str) -> None:
        pass

    def job_picked(
        self, runner: str, queued_seconds: float | None, project_jobs_running: str = ""
    ) -> None:
        pass

    def stage_finished(self, runner: str, stage: BuildStage, seconds: float) -> None:
        pass

    def job_finished(
        self,
        runner: str,
        state: BuildState,
        reason: FailureReason | None,
        seconds: float | None,
        trace: str | None = None,
    ) -> None:
        pass

    def job_resources(self, runner: str, executor: str, used: ResourceUsage | None) -> None:
        pass

    def cache_transfer(self, runner: str, operation: str, ok: bool, seconds: float) -> None:
        pass


class JobSpan(Protocol):
    """The trace of one running job. No method raises: tracing never fails a build."""

    def stage_started(self, stage: BuildStage) -> None:
        """A stage began."""

    def stage_finished(self, stage: BuildStage, ok: bool) -> None:
        """A stage ended; `ok` is False when its script failed, timed out or was stopped."""

    def finished(self, state: BuildState, reason: FailureReason | None) -> None:
        """The job ended in a final `state`; stages still open end with it."""

    def traceparent(self) -> str | None:
        """Return the W3C `traceparent` of the job's span for its scripts (None: none)."""

    def context_variables(self) -> dict[str, str]:
        """Return the variables that carry the job's trace context to its scripts, by the
        configured propagators (TRACEPARENT, TRACESTATE, BAGGAGE...); {} without tracing."""


class BuildTracer(Protocol):
    """Start the trace of a job when a runner begins to run it."""

    def job_started(self, runner: str, job: Job, *, url: str = "", worker_id: str = "") -> JobSpan:
        """Open the job's span; a `TRACEPARENT` among its variables makes it a child of that.

        `url` is the job's page (`cicd.pipeline.task.run.url.full`), `worker_id` the
        runner's identifier (`cicd.worker.id`; empty: its name).
        """


class NoJobSpan:
    """A JobSpan that records nothing."""

    def stage_started(self, stage: BuildStage) -> None:
        pass

    def stage_finished(self, stage: BuildStage, ok: bool) -> None:
        pass

    def finished(self, state: BuildState, reason: FailureReason | None) -> None:
        pass

    def traceparent(self) -> str | None:
        return None

    def context_variables(self) -> dict[str, str]:
        return {}


class NoTracer:
    """A BuildTracer that traces nothing (no OTLP endpoint, and the `exec` command)."""

    def job_started(self, runner: str, job: Job, *, url: str = "", worker_id: str = "") -> JobSpan:
        return NoJobSpan()
