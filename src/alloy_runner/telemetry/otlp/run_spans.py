"""The pipeline-run span of a spool pipeline, emitted once it ended, with the ids it was given.

`spool.runs` drew the run's trace id and span id at submit, and its jobs' spans
are already its children; this makes the span itself (kind SERVER, as
`span.cicd.pipeline.run.server` says) with those ids, the pipeline's creation
as its start and its last job's end as its end. The SDK draws ids from its
provider's `IdGenerator`, so the provider gets a `PresetIds` that hands out a
preset id to the one span being made here and random ones to every other.
"""

from __future__ import annotations

import contextvars
import logging
from typing import TYPE_CHECKING

from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.semconv._incubating.attributes.cicd_attributes import (
    CICD_PIPELINE_ACTION_NAME,
    CICD_PIPELINE_NAME,
    CICD_PIPELINE_RESULT,
    CICD_PIPELINE_RUN_ID,
    CICD_PIPELINE_RUN_URL_FULL,
    CICD_WORKER_ID,
    CICD_WORKER_NAME,
    CicdPipelineActionNameValues,
)
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    set_span_in_context,
)

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.util.types import AttributeValue

    from alloy_runner.coordinator.spool.runs import PipelineRun

log = logging.getLogger(__name__)

_PRESET: contextvars.ContextVar[tuple[int, int] | None] = contextvars.ContextVar(
    "preset_ids", default=None
)


class PresetIds(IdGenerator):
    """Random ids, except for a span made while `_PRESET` holds (trace id, span id)."""

    def __init__(self) -> None:
        self._random = RandomIdGenerator()

    def generate_span_id(self) -> int:
        preset = _PRESET.get()
        return preset[1] if preset is not None else self._random.generate_span_id()

    def generate_trace_id(self) -> int:
        preset = _PRESET.get()
        return preset[0] if preset is not None else self._random.generate_trace_id()


class RunSpans:
    """Emit the pipeline-run span of each spool pipeline that ended (`SpoolSource.on_run_end`)."""

    def __init__(self, provider: TracerProvider, version: str, controller: str) -> None:
        self._tracer = provider.get_tracer("alloy_runner", version)
        self._controller = controller  # cicd.worker.*: the runner that controls the pipeline

    def __call__(self, run: PipelineRun) -> None:
        try:
            self._emit(run)
        except Exception:  # tracing never fails a job
            log.debug("tracing: could not emit pipeline %d's span", run.id, exc_info=True)

    def _emit(self, run: PipelineRun) -> None:
        trace_id, span_id = int(run.trace.trace_id, 16), int(run.trace.span_id, 16)
        context = None
        if run.trace.parent_span_id:
            parent = SpanContext(
                trace_id,
                int(run.trace.parent_span_id, 16),
                is_remote=True,
                trace_flags=TraceFlags(TraceFlags.SAMPLED),
            )
            context = set_span_in_context(NonRecordingSpan(parent))
        action = CicdPipelineActionNameValues.RUN.value
        attributes: dict[str, AttributeValue] = {
            CICD_PIPELINE_NAME: run.name,
            CICD_PIPELINE_RUN_ID: str(run.id),
            CICD_PIPELINE_RUN_URL_FULL: run.url,
            CICD_PIPELINE_RESULT: run.result,
            CICD_PIPELINE_ACTION_NAME: action,
            CICD_WORKER_ID: self._controller,
            CICD_WORKER_NAME: self._controller,
        }
        if run.error_type is not None:
            attributes[ERROR_TYPE] = run.error_type
        token = _PRESET.set((trace_id, span_id))
        try:
            span = self._tracer.start_span(
                f"{action} {run.name}" if run.name else action,
                context=context,
                kind=SpanKind.SERVER,
                attributes=attributes,
                start_time=int(run.created_at * 1e9),
            )
        finally:
            _PRESET.reset(token)
        if run.result in ("failure", "error", "timeout"):
            span.set_status(Status(StatusCode.ERROR, run.error_type))
        span.end(end_time=max(int(run.ended_at * 1e9), int(run.created_at * 1e9)))
