"""The CI/CD semantic-convention metrics (`model/cicd/metrics.yaml`), pushed over OTLP only.

- `cicd.pipeline.run.duration` (histogram, `s`): a spool pipeline's time
  `pending` (submit to its first job) and `executing` (to its last job's end,
  with `cicd.pipeline.result`);
- `cicd.pipeline.run.active` (observed up-down counter, `{run}`): the spool's
  pipelines not ended, by `cicd.pipeline.run.state`;
- `cicd.pipeline.run.errors` (counter, `{error}`): each failed job of an ended
  spool pipeline, by `error.type` (its failure reason);
- `cicd.system.errors` (counter, `{error}`): each error this runner logs, by
  `cicd.system.component` (the part that logged it) and `error.type`;
- `cicd.worker.count` (observed up-down counter, `{worker}`): the `[[runners]]`
  of this process, `busy` while one runs a build, else `available`.

They live on a MeterProvider of their own, whose readers are the OTLP ones:
`/metrics` is the runner's interface with its own names (see docs/metrics.md),
and an SDK view or instrument reaches every reader of its provider.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.semconv._incubating.attributes.cicd_attributes import (
    CICD_PIPELINE_NAME,
    CICD_PIPELINE_RESULT,
    CICD_PIPELINE_RUN_STATE,
    CICD_SYSTEM_COMPONENT,
    CICD_WORKER_STATE,
    CicdPipelineRunStateValues,
    CicdWorkerStateValues,
)
from opentelemetry.semconv._incubating.metrics.cicd_metrics import (
    CICD_PIPELINE_RUN_ACTIVE,
    CICD_PIPELINE_RUN_DURATION,
    CICD_WORKER_COUNT,
    create_cicd_pipeline_run_errors,
    create_cicd_system_errors,
)
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE

from alloy_runner.telemetry.catalog.instruments import JOB_BUCKETS

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics import MeterProvider

    from alloy_runner.coordinator.spool.runs import PipelineRun

__all__ = ["CICD_PIPELINE_RUN_ACTIVE", "CICD_PIPELINE_RUN_DURATION", "CicdMetrics"]

_OTHER = "_OTHER"  # the semantic conventions' error.type when nothing better is known
PENDING = CicdPipelineRunStateValues.PENDING.value
EXECUTING = CicdPipelineRunStateValues.EXECUTING.value


class CicdMetrics:
    """Record the CI/CD metrics of this process on `provider` (the OTLP-only one)."""

    def __init__(
        self,
        provider: MeterProvider,
        version: str,
        *,
        workers: Callable[[], Iterable[tuple[str, int]]] = list,
        active_runs: Callable[[], Sequence[tuple[str, str]]] | None = None,
    ) -> None:
        self.provider = provider
        meter = provider.get_meter("alloy_runner.cicd", version)
        self._duration = meter.create_histogram(
            CICD_PIPELINE_RUN_DURATION,
            unit="s",
            description="Duration of a pipeline run grouped by pipeline, state and result.",
            explicit_bucket_boundaries_advisory=[float(b) for b in JOB_BUCKETS],
        )
        self._run_errors = create_cicd_pipeline_run_errors(meter)
        self.system_errors = create_cicd_system_errors(meter)
        self._workers = workers
        self._active_runs = active_runs
        meter.create_observable_up_down_counter(
            CICD_WORKER_COUNT,
            [self._observe_workers],
            unit="{worker}",
            description="The number of workers on the CI/CD system by state.",
        )
        if active_runs is not None:
            meter.create_observable_up_down_counter(
                CICD_PIPELINE_RUN_ACTIVE,
                [self._observe_runs],
                unit="{run}",
                description="The number of pipeline runs currently active in the system by state.",
            )

    def run_ended(self, run: PipelineRun) -> None:
        """Record an ended spool pipeline: its durations by state, and its jobs' errors."""
        name = {CICD_PIPELINE_NAME: run.name}
        began = run.started_at if run.started_at is not None else run.ended_at
        self._duration.record(
            max(0.0, began - run.created_at), {**name, CICD_PIPELINE_RUN_STATE: PENDING}
        )
        executing = {**name, CICD_PIPELINE_RUN_STATE: EXECUTING, CICD_PIPELINE_RESULT: run.result}
        if run.error_type is not None:
            executing[ERROR_TYPE] = run.error_type
        self._duration.record(max(0.0, run.ended_at - began), executing)
        for reason in run.errors:
            self._run_errors.add(1, {**name, ERROR_TYPE: reason})

    def _observe_workers(self, _options: CallbackOptions) -> Iterable[Observation]:
        busy = sum(1 for _name, running in self._workers() if running)
        total = sum(1 for _ in self._workers())
        return [
            Observation(busy, {CICD_WORKER_STATE: CicdWorkerStateValues.BUSY.value}),
            Observation(total - busy, {CICD_WORKER_STATE: CicdWorkerStateValues.AVAILABLE.value}),
        ]

    def _observe_runs(self, _options: CallbackOptions) -> Iterable[Observation]:
        assert self._active_runs is not None
        counts: dict[tuple[str, str], int] = {}
        for key in self._active_runs():
            counts[key] = counts.get(key, 0) + 1
        return [
            Observation(n, {CICD_PIPELINE_NAME: name, CICD_PIPELINE_RUN_STATE: state})
            for (name, state), n in sorted(counts.items())
        ]


class SystemErrors(logging.Handler):
    """Count each error this runner logs as `cicd.system.errors`, by the part that logged it."""

    def __init__(self, metrics: CicdMetrics) -> None:
        super().__init__(level=logging.ERROR)
        self._counter = metrics.system_errors
        self._busy = threading.local()

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(self._busy, "active", False):  # counting may log: never recurse
            return
        self._busy.active = True
        try:
            parts = record.name.split(".")
            component = parts[1] if parts[0] == "alloy_runner" and len(parts) > 1 else parts[0]
            error = (
                record.exc_info[0].__name__ if record.exc_info and record.exc_info[0] else _OTHER
            )
            self._counter.add(1, {CICD_SYSTEM_COMPONENT: component, ERROR_TYPE: error})
        finally:
            self._busy.active = False


def system_errors(metrics: CicdMetrics | None) -> tuple[logging.Handler, ...]:
    """Return the log handler that counts `cicd.system.errors`, if there are CI/CD metrics."""
    return (SystemErrors(metrics),) if metrics is not None else ()
