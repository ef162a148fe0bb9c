"""The build families: live builds read at collection, job events recorded as they happen."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from alloy_runner.build.states import (
    FINAL_STATES,
    IDLE,
    BuildStage,
    BuildState,
    FailureReason,
)
from alloy_runner.telemetry.catalog import instruments
from alloy_runner.telemetry.catalog.naming import project_jobs_running_label
from alloy_runner.telemetry.metrics.queuing import queuing_exceeded

if TYPE_CHECKING:
    from alloy_runner.build.registry import BuildRegistry
    from alloy_runner.config.model import RunnerConfig
    from alloy_runner.executors.base import ResourceUsage
    from alloy_runner.telemetry.metrics.setup import Reading, Telemetry


_PROPAGATOR = TraceContextTextMapPropagator()


class BuildTelemetry:
    """The telemetry side of `BuildMetrics`, and the observers of the live builds."""

    def __init__(
        self,
        telemetry: Telemetry,
        registry: BuildRegistry,
        runners: Callable[[], Sequence[RunnerConfig]],
        requests: Callable[[], Mapping[str, int]],
        limits: Callable[[], Mapping[str, tuple[float, int]]] = dict,
    ) -> None:
        self._registry = registry
        self._runners = runners
        self._jobs = telemetry.counter(instruments.JOBS)
        self._failed = telemetry.counter(instruments.FAILED_JOBS)
        self._duration = telemetry.histogram(instruments.JOB_DURATION)
        self._queue = telemetry.histogram(instruments.QUEUE_DURATION)
        self._stage = telemetry.histogram(instruments.STAGE_DURATION)
        self._cpu = telemetry.histogram(instruments.JOB_CPU)
        self._memory = telemetry.histogram(instruments.JOB_MEMORY_PEAK)
        self._cache = telemetry.histogram(instruments.CACHE_TRANSFER_DURATION)
        telemetry.observe(instruments.BUILDS, self._builds)
        telemetry.observe(
            instruments.LIMIT, lambda: [(float(r.limit), {"runner": r.name}) for r in runners()]
        )
        _observe_requests(telemetry, runners, requests, limits)
        self._exceeded = telemetry.counter(instruments.REQUEST_CONCURRENCY_EXCEEDED)
        self._queuing_exceeded = telemetry.counter(instruments.QUEUING_DURATION_EXCEEDED)
        # Every series of a closed label set exists from the start, so rate() sees the first job.
        for runner in runners():
            self._exceeded.add(0, {"runner": runner.name})
            self._queuing_exceeded.add(0, {"runner": runner.name})
            for state in FINAL_STATES:
                self._jobs.add(0, {"runner": runner.name, "state": state.value})
            for reason in FailureReason:
                self._failed.add(0, {"runner": runner.name, "failure_reason": reason.value})

    def _builds(self) -> Reading:
        counts: Counter[tuple[str, str, str, str]] = Counter(
            (b.runner, b.stage.value, b.state.value, b.executor_stage.value)
            for b in self._registry.snapshot()
        )
        readings = [
            (float(n), {"runner": r, "stage": s, "state": st, "executor_stage": e})
            for (r, s, st, e), n in counts.items()
        ]
        readings += [
            (0.0, {"runner": r.name, "stage": IDLE, "state": IDLE, "executor_stage": IDLE})
            for r in self._runners()
        ]
        return readings

    def jobs_lost(self, runner: str, count: int) -> None:
        """Count `count` jobs a dead runner process left behind, failed as system failures."""
        for _ in range(count):
            self.job_finished(runner, BuildState.FAILED, FailureReason.RUNNER_SYSTEM_FAILURE, None)

    # --- BuildMetrics ------------------------------------------------------------------

    def requests_exceeded(self, runner: str) -> None:
        self._exceeded.add(1, {"runner": runner})

    def job_picked(
        self, runner: str, queued_seconds: float | None, project_jobs_running: str = ""
    ) -> None:
        if queued_seconds is None:
            return
        # project_jobs_running is for the GitLab naming; the ci_* family sums it away.
        label = project_jobs_running_label(project_jobs_running)
        self._queue.record(queued_seconds, {"runner": runner, "project_jobs_running": label})
        config = next((r for r in self._runners() if r.name == runner), None)
        if config is not None and queuing_exceeded(
            config.job_queuing_durations, queued_seconds, project_jobs_running, time.time()
        ):
            self._queuing_exceeded.add(1, {"runner": runner})

    def stage_finished(self, runner: str, stage: BuildStage, seconds: float) -> None:
        self._stage.record(seconds, {"runner": runner, "stage": stage.value})

    def job_finished(
        self,
        runner: str,
        state: BuildState,
        reason: FailureReason | None,
        seconds: float | None,
        trace: str | None = None,
    ) -> None:
        self._jobs.add(1, {"runner": runner, "state": state.value})
        if reason is not None:
            self._failed.add(1, {"runner": runner, "failure_reason": reason.value})
        if seconds is not None:
            # In the job's trace context, the SDK keeps the observation as an exemplar.
            context = _PROPAGATOR.extract({"traceparent": trace}) if trace else None
            self._duration.record(seconds, {"runner": runner}, context=context)

    def job_resources(self, runner: str, executor: str, used: ResourceUsage | None) -> None:
        if used is None:
            return
        labels = {"runner": runner, "executor": executor}
        self._cpu.record(used.cpu_seconds, labels)
        self._memory.record(float(used.memory_peak_bytes), labels)

    def cache_transfer(self, runner: str, operation: str, ok: bool, seconds: float) -> None:
        result = instruments.CACHE_RESULTS[0 if ok else 1]
        self._cache.record(seconds, {"runner": runner, "operation": operation, "result": result})


def _observe_requests(
    telemetry: Telemetry,
    runners: Callable[[], Sequence[RunnerConfig]],
    requests: Callable[[], Mapping[str, int]],
    limits: Callable[[], Mapping[str, tuple[float, int]]],
) -> None:
    """Observe the requests in flight and the hard, adaptive and used limits of each runner."""

    def each(value: Callable[[RunnerConfig], float]) -> Callable[[], Reading]:
        return lambda: [(value(r), {"runner": r.name}) for r in runners()]

    def limit(r: RunnerConfig, index: int) -> float:
        return float(limits().get(r.name, (1.0, 1))[index])

    telemetry.observe(
        instruments.REQUEST_CONCURRENCY, each(lambda r: float(requests().get(r.name, 0)))
    )
    telemetry.observe(
        instruments.REQUEST_CONCURRENCY_HARD_LIMIT, each(lambda r: float(r.request_concurrency))
    )
    telemetry.observe(instruments.REQUEST_CONCURRENCY_ADAPTIVE_LIMIT, each(lambda r: limit(r, 0)))
    telemetry.observe(instruments.REQUEST_CONCURRENCY_USED_LIMIT, each(lambda r: limit(r, 1)))
