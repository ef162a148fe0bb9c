"""With a coordinator, a job's span continues the coordinator's TRACEPARENT."""

from __future__ import annotations

from opentelemetry.semconv._incubating.attributes.cicd_attributes import (
    CICD_PIPELINE_RUN_URL_FULL,
    CICD_PIPELINE_TASK_RUN_URL_FULL,
    CICD_WORKER_ID,
)
from opentelemetry.semconv._incubating.attributes.vcs_attributes import VCS_REPOSITORY_URL_FULL

from tests.support import StartRunner, wait_until
from tests.support.fake_coordinator import StartFake, gitlab_config
from tests.support.otlp import OtlpReceiver, attributes


def test_a_coordinator_job_span_continues_its_traceparent(
    start_fake: StartFake, start_runner: StartRunner
) -> None:
    """The coordinator's TRACEPARENT parents the job's span; its URLs carry no credentials."""
    fake = start_fake(long_poll=1.0)
    trace, parent = "ab" * 16, "cd" * 8
    with OtlpReceiver() as receiver:
        start_runner(
            gitlab_config(fake),
            env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "50"},
        )
        job = fake.add_job(
            "traced",
            ["true"],
            variables=[
                {"key": "TRACEPARENT", "value": f"00-{trace}-{parent}-01", "public": True},
                {"key": "CI_PIPELINE_URL", "value": "https://gl.example/g/p/-/pipelines/1"},
            ],
        )
        fake.wait_done([job], timeout=30)
        [span] = wait_until(
            lambda: [s for _, s in receiver.spans() if s.name == "traced"], 10, what="job span"
        )
    assert span.trace_id.hex() == trace and span.parent_span_id.hex() == parent
    attrs = attributes(span.attributes)
    assert attrs[CICD_PIPELINE_RUN_URL_FULL] == "https://gl.example/g/p/-/pipelines/1"
    assert attrs[CICD_PIPELINE_TASK_RUN_URL_FULL] == f"{fake.url}/-/jobs/{job.id}"
    assert attrs[CICD_WORKER_ID] == fake.runner_token[:8]
    assert VCS_REPOSITORY_URL_FULL not in attrs  # the fake's job has no repository
