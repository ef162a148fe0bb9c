"""The build families: live builds read at collection, job events recorded as they happen."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from alloy_runner.build.states import (
    FINAL_STATES,
    IDLE,
    BuildStage,
    BuildState,
    FailureReason,
)
from alloy_runner.telemetry.catalog import instruments

if TYPE_CHECKING:
    from alloy_runner.build.registry import BuildRegistry
    from alloy_runner.config.model import RunnerConfig
    from alloy_runner.executors.base import ResourceUsage
    from alloy_runner.telemetry.metrics.setup import Reading, Telemetry


class BuildTelemetry:
    """The telemetry side of `BuildMetrics`, and the observers of the live builds."""

    def __init__(
        self,
        telemetry: Telemetry,
        registry: BuildRegistry,
        runners: Callable[[], Sequence[RunnerConfig]],
        requests: Callable[[], Mapping[str, int]],
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
        telemetry.observe(
            instruments.REQUEST_CONCURRENCY,
            lambda: [(float(requests().get(r.name, 0)), {"runner": r.name}) for r in runners()],
        )
        # Every series of a closed label set exists from the start, so rate() sees the first job.
        for runner in runners():
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

    # --- BuildMetrics ------------------------------------------------------------------

    def job_picked(self, runner: str, queued_seconds: float | None) -> None:
        if queued_seconds is not None:
            self._queue.record(queued_seconds, {"runner": runner})

    def stage_finished(self, runner: str, stage: BuildStage, seconds: float) -> None:
        self._stage.record(seconds, {"runner": runner, "stage": stage.value})

    def job_finished(
        self, runner: str, state: BuildState, reason: FailureReason | None, seconds: float | None
    ) -> None:
        self._jobs.add(1, {"runner": runner, "state": state.value})
        if reason is not None:
            self._failed.add(1, {"runner": runner, "failure_reason": reason.value})
        if seconds is not None:
            self._duration.record(seconds, {"runner": runner})

    def job_resources(self, runner: str, executor: str, used: ResourceUsage | None) -> None:
        if used is None:
            return
        labels = {"runner": runner, "executor": executor}
        self._cpu.record(used.cpu_seconds, labels)
        self._memory.record(float(used.memory_peak_bytes), labels)

    def cache_transfer(self, runner: str, operation: str, ok: bool, seconds: float) -> None:
        result = instruments.CACHE_RESULTS[0 if ok else 1]
        self._cache.record(seconds, {"runner": runner, "operation": operation, "result": result})
