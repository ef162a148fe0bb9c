"""Job traces through `JobTracer`, read back from an in-memory exporter."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv._incubating.attributes.cicd_attributes import (
    CICD_PIPELINE_RUN_ID,
    CICD_PIPELINE_TASK_RUN_RESULT,
)
from opentelemetry.trace import StatusCode

from alloy_runner.build.job import Job, Variable
from alloy_runner.build.ports import NoTracer
from alloy_runner.build.states import BuildStage, BuildState, FailureReason
from alloy_runner.telemetry.otlp.tracing import JobTracer, task_result


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    yield exporter
    exporter.clear()


def tracer_of(exporter: InMemorySpanExporter) -> JobTracer:
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return JobTracer(provider, "test")


def job(*variables: tuple[str, str]) -> Job:
    return Job(
        id=42,
        token="t",
        name="unit",
        stage="test",
        project_name="demo",
        variables=tuple(Variable(k, v) for k, v in variables),
    )


def by_name(exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    return {span.name: span for span in exporter.get_finished_spans()}


def test_a_stage_still_open_when_the_job_ends_ends_with_it_as_an_error(
    exporter: InMemorySpanExporter,
) -> None:
    """A stage interrupted by the job's end is closed, marked as an error, inside the job's span."""
    span = tracer_of(exporter).job_started("r", job(("CI_PIPELINE_ID", "7")))
    span.stage_started(BuildStage.BUILD_SCRIPT)
    span.finished(BuildState.TERMINATED, FailureReason.RUNNER_INTERRUPTED)
    spans = by_name(exporter)
    stage, root = spans["build_script"], spans["unit"]
    assert stage.status.status_code is StatusCode.ERROR
    assert stage.end_time is not None and root.end_time is not None
    assert stage.end_time <= root.end_time
    assert root.attributes is not None
    assert root.attributes[CICD_PIPELINE_TASK_RUN_RESULT] == "cancellation"
    assert root.attributes[CICD_PIPELINE_RUN_ID] == "7"
    assert root.attributes["error.type"] == "runner_interrupted"


def test_an_invalid_traceparent_starts_a_trace_of_its_own(exporter: InMemorySpanExporter) -> None:
    """A malformed TRACEPARENT is ignored: the job's span is a root, and scripts get a valid one."""
    span = tracer_of(exporter).job_started("r", job(("TRACEPARENT", "00-zz-nope-01")))
    traceparent = span.traceparent()
    span.finished(BuildState.SUCCESS, None)
    root = by_name(exporter)["unit"]
    assert root.parent is None
    assert traceparent is not None
    assert traceparent.split("-")[1:3] == [
        f"{root.context.trace_id:032x}",
        f"{root.context.span_id:016x}",
    ]


def test_finishing_twice_records_one_span(exporter: InMemorySpanExporter) -> None:
    """A job's span ends once, however often it is told."""
    span = tracer_of(exporter).job_started("r", job())
    span.finished(BuildState.SUCCESS, None)
    span.finished(BuildState.FAILED, FailureReason.SCRIPT_FAILURE)
    assert len(exporter.get_finished_spans()) == 1


@pytest.mark.parametrize(
    ("state", "reason", "result"),
    [
        (BuildState.SUCCESS, None, "success"),
        (BuildState.FAILED, FailureReason.SCRIPT_FAILURE, "failure"),
        (BuildState.FAILED, FailureReason.RUNNER_SYSTEM_FAILURE, "error"),
        (BuildState.TIMEDOUT, FailureReason.JOB_EXECUTION_TIMEOUT, "timeout"),
        (BuildState.CANCELED, FailureReason.JOB_CANCELED, "cancellation"),
    ],
)
def test_a_final_state_maps_to_a_task_run_result(
    state: BuildState, reason: FailureReason | None, result: str
) -> None:
    """Each final state has its `cicd.pipeline.task.run.result` value."""
    assert task_result(state, reason).value == result


def test_without_otlp_scripts_keep_the_traceparent_they_were_given() -> None:
    """The no-op tracer offers no TRACEPARENT of its own: a job's variable is left as given."""
    span = NoTracer().job_started(
        "r", job(("TRACEPARENT", "00-" + "1" * 32 + "-" + "2" * 16 + "-01"))
    )
    assert span.traceparent() is None
