"""Job traces: the OpenTelemetry side of `BuildTracer`, one span per job and one per stage."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from opentelemetry.propagators.textmap import Getter, Setter, TextMapPropagator
from opentelemetry.semconv._incubating.attributes.cicd_attributes import (
    CICD_PIPELINE_TASK_RUN_ID,
    CICD_PIPELINE_TASK_RUN_RESULT,
    CICD_WORKER_NAME,
    CicdPipelineTaskRunResultValues,
)
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer, set_span_in_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from alloy_runner.build.ports import PIPELINE_TRACEPARENT, JobSpan, NoJobSpan
from alloy_runner.build.states import BuildState, FailureReason
from alloy_runner.telemetry.otlp.semconv import job_attributes

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.trace import TracerProvider
    from opentelemetry.util.types import AttributeValue

    from alloy_runner.build.job import Job
    from alloy_runner.build.states import BuildStage

log = logging.getLogger(__name__)

TRACESTATE = "TRACESTATE"
_PROPAGATOR = TraceContextTextMapPropagator()
_NOT_NAME = re.compile(r"[^A-Z0-9_]")


def env_name(key: str) -> str:
    """Return the environment variable that carries the propagation field `key` (TRACEPARENT)."""
    return _NOT_NAME.sub("_", key.upper())


class EnvGetter(Getter[Mapping[str, str]]):
    """Read propagation fields from environment variables, as the specification names them."""

    def get(self, carrier: Mapping[str, str], key: str) -> list[str] | None:
        value = carrier.get(env_name(key))
        return [value] if value else None

    def keys(self, carrier: Mapping[str, str]) -> list[str]:
        return list(carrier)


class EnvSetter(Setter[dict[str, str]]):
    """Write propagation fields as environment variables (traceparent -> TRACEPARENT)."""

    def set(self, carrier: dict[str, str], key: str, value: str) -> None:
        carrier[env_name(key)] = value


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


class _JobSpan:
    """The spans of one running job; every method swallows its own failures."""

    def __init__(
        self,
        tracer: Tracer,
        span: Span,
        stage_attributes: dict[str, AttributeValue],
        propagator: TextMapPropagator = _PROPAGATOR,
        parent: Context | None = None,
    ):
        self._tracer = tracer
        self._propagator = propagator
        self._parent = parent
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

    def context_variables(self) -> dict[str, str]:
        # The job's span in the context it was given (its baggage included), by OTEL_PROPAGATORS.
        carrier: dict[str, str] = {}
        try:
            self._propagator.inject(
                carrier, context=set_span_in_context(self._span, self._parent), setter=EnvSetter()
            )
        except Exception:
            log.debug("tracing: could not inject the job's context", exc_info=True)
        return carrier


class JobTracer:
    """A `BuildTracer` on an OpenTelemetry TracerProvider."""

    def __init__(
        self,
        provider: TracerProvider,
        version: str = "",
        *,
        propagator: TextMapPropagator | None = None,
    ) -> None:
        self._tracer = provider.get_tracer("alloy_runner", version)
        self._propagator = propagator if propagator is not None else _PROPAGATOR

    def job_started(self, runner: str, job: Job, *, url: str = "", worker_id: str = "") -> JobSpan:
        try:
            return self._start(runner, job, url, worker_id)
        except Exception:
            log.debug("tracing: could not start job %d's span", job.id, exc_info=True)
            return NoJobSpan()

    def _start(self, runner: str, job: Job, url: str, worker_id: str) -> JobSpan:
        carrier = {v.key: v.value for v in job.variables if not v.file}  # the last one wins
        # An invalid traceparent is ignored: the job then starts a trace of its own.
        parent = self._propagator.extract(carrier, getter=EnvGetter())
        pipeline = carrier.get(PIPELINE_TRACEPARENT)
        if pipeline:  # the spool's pipeline-run span is the parent; its baggage stays
            parent = _PROPAGATOR.extract({"traceparent": pipeline}, context=parent)
        attributes = job_attributes(job, worker_name=runner, worker_id=worker_id, url=url)
        span = self._tracer.start_span(
            job.name or f"job {job.id}",
            context=parent,
            kind=SpanKind.INTERNAL,  # a task run, as model/cicd/spans.yaml says
            attributes=attributes,
        )
        stage_attributes: dict[str, AttributeValue] = {
            CICD_PIPELINE_TASK_RUN_ID: str(job.id),
            CICD_WORKER_NAME: runner,
        }
        return _JobSpan(self._tracer, span, stage_attributes, self._propagator, parent)
