"""Job traces: the OpenTelemetry side of `BuildTracer`, one span per job and one per stage."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from opentelemetry.semconv._incubating.attributes.cicd_attributes import (
    CICD_PIPELINE_NAME,
    CICD_PIPELINE_RUN_ID,
    CICD_PIPELINE_TASK_NAME,
    CICD_PIPELINE_TASK_RUN_ID,
    CICD_PIPELINE_TASK_RUN_RESULT,
    CICD_WORKER_NAME,
    CicdPipelineTaskRunResultValues,
)
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.trace import Span, Status, StatusCode, Tracer, set_span_in_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from alloy_runner.build.ports import TRACEPARENT, JobSpan, NoJobSpan
from alloy_runner.build.states import BuildState, FailureReason

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider
    from opentelemetry.util.types import AttributeValue

    from alloy_runner.build.job import Job
    from alloy_runner.build.states import BuildStage

log = logging.getLogger(__name__)

TRACESTATE = "TRACESTATE"
_PROPAGATOR = TraceContextTextMapPropagator()

# A script that failed is the job's failure; anything else that ended it is an error of the run.
_RESULTS = {
    BuildState.SUCCESS: CicdPipelineTaskRunResultValues.SUCCESS,
    BuildState.TIMEDOUT: CicdPipelineTaskRunResultValues.TIMEOUT,
    BuildState.CANCELED: CicdPipelineTaskRunResultValues.CANCELLATION,
    BuildState.TERMINATED: CicdPipelineTaskRunResultValues.CANCELLATION,
}


def task_result(state: BuildState, reason: FailureReason | None) -> CicdPipelineTaskRunResultValues:
    """Return the `cicd.pipeline.task.run.result` of a job that ended in `state`."""
    if state in _RESULTS:
        return _RESULTS[state]
    if reason in (None, FailureReason.SCRIPT_FAILURE):
        return CicdPipelineTaskRunResultValues.FAILURE
    return CicdPipelineTaskRunResultValues.ERROR


def _variable(job: Job, key: str) -> str | None:
    # The last definition wins, as it does in the job's environment.
    values = [v.value for v in job.variables if v.key == key and not v.file]
    return values[-1] if values else None


class _JobSpan:
    """The spans of one running job; every method swallows its own failures."""

    def __init__(self, tracer: Tracer, span: Span, stage_attributes: dict[str, AttributeValue]):
        self._tracer = tracer
        self._span = span
        self._stage_attributes = stage_attributes
        self._stages: dict[BuildStage, Span] = {}
        self._ended = False

    def stage_started(self, stage: BuildStage) -> None:
        try:
            self._end_stage(stage, ok=False)  # a stage cannot start twice while it runs
            self._stages[stage] = self._tracer.start_span(
                stage.value,
                context=set_span_in_context(self._span),
                attributes=self._stage_attributes,
            )
        except Exception:
            log.debug("tracing: could not start stage %s", stage.value, exc_info=True)

    def stage_finished(self, stage: BuildStage, ok: bool) -> None:
        try:
            self._end_stage(stage, ok)
        except Exception:
            log.debug("tracing: could not end stage %s", stage.value, exc_info=True)

    def _end_stage(self, stage: BuildStage, ok: bool) -> None:
        span = self._stages.pop(stage, None)
        if span is None:
            return
        if not ok:
            span.set_status(Status(StatusCode.ERROR))
        span.end()

    def finished(self, state: BuildState, reason: FailureReason | None) -> None:
        if self._ended:
            return
        self._ended = True
        try:
            for stage in list(self._stages):
                self._end_stage(stage, ok=False)
            result = task_result(state, reason)
            self._span.set_attribute(CICD_PIPELINE_TASK_RUN_RESULT, result.value)
            if state is not BuildState.SUCCESS:
                why = reason.value if reason is not None else state.value
                self._span.set_attribute(ERROR_TYPE, why)
                self._span.set_status(Status(StatusCode.ERROR, why))
            self._span.end()
        except Exception:
            log.debug("tracing: could not end the job's span", exc_info=True)

    def traceparent(self) -> str | None:
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier, context=set_span_in_context(self._span))
        return carrier.get("traceparent")


class JobTracer:
    """A `BuildTracer` on an OpenTelemetry TracerProvider."""

    def __init__(self, provider: TracerProvider, version: str = "") -> None:
        self._tracer = provider.get_tracer("alloy_runner", version)

    def job_started(self, runner: str, job: Job) -> JobSpan:
        try:
            return self._start(runner, job)
        except Exception:
            log.debug("tracing: could not start job %d's span", job.id, exc_info=True)
            return NoJobSpan()

    def _start(self, runner: str, job: Job) -> JobSpan:
        carrier = {}
        for key in (TRACEPARENT, TRACESTATE):
            value = _variable(job, key)
            if value:
                carrier[key.lower()] = value
        # An invalid traceparent is ignored: the job then starts a trace of its own.
        parent = _PROPAGATOR.extract(carrier)
        attributes: dict[str, AttributeValue] = {
            CICD_PIPELINE_NAME: job.project_name or f"project-{job.project_id}",
            CICD_PIPELINE_TASK_NAME: job.name,
            CICD_PIPELINE_TASK_RUN_ID: str(job.id),
            CICD_WORKER_NAME: runner,
        }
        pipeline_id = _variable(job, "CI_PIPELINE_ID")
        if pipeline_id:
            attributes[CICD_PIPELINE_RUN_ID] = pipeline_id
        span = self._tracer.start_span(
            job.name or f"job {job.id}", context=parent, attributes=attributes
        )
        stage_attributes: dict[str, AttributeValue] = {
            CICD_PIPELINE_TASK_RUN_ID: str(job.id),
            CICD_WORKER_NAME: runner,
        }
        return _JobSpan(self._tracer, span, stage_attributes)
