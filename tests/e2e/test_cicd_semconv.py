"""A two-stage spool pipeline as the CI/CD semantic conventions say: one trace, every attribute.

The real runner runs a real pipeline from a real git repository; the OTLP
receiver decodes the spans; attribute names are the constants of
opentelemetry-semantic-conventions, so a rename in the registry fails here.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

from opentelemetry.proto.trace.v1.trace_pb2 import Span
from opentelemetry.semconv._incubating.attributes.cicd_attributes import (
    CICD_PIPELINE_ACTION_NAME,
    CICD_PIPELINE_NAME,
    CICD_PIPELINE_RESULT,
    CICD_PIPELINE_RUN_ID,
    CICD_PIPELINE_RUN_STATE,
    CICD_PIPELINE_RUN_URL_FULL,
    CICD_PIPELINE_TASK_NAME,
    CICD_PIPELINE_TASK_RUN_ID,
    CICD_PIPELINE_TASK_RUN_RESULT,
    CICD_PIPELINE_TASK_RUN_URL_FULL,
    CICD_PIPELINE_TASK_TYPE,
    CICD_WORKER_ID,
    CICD_WORKER_NAME,
    CICD_WORKER_STATE,
    CicdPipelineResultValues,
    CicdPipelineTaskRunResultValues,
    CicdPipelineTaskTypeValues,
)
from opentelemetry.semconv._incubating.attributes.vcs_attributes import (
    VCS_REF_HEAD_NAME,
    VCS_REF_HEAD_REVISION,
    VCS_REPOSITORY_URL_FULL,
)
from opentelemetry.semconv._incubating.metrics.cicd_metrics import (
    CICD_PIPELINE_RUN_ACTIVE,
    CICD_PIPELINE_RUN_DURATION,
    CICD_PIPELINE_RUN_ERRORS,
    CICD_WORKER_COUNT,
)
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE

from alloy_runner.build.states import BuildStage
from alloy_runner.coordinator.spool.store import Spool
from tests.support import RunnerProcess, StartRunner, run_cli, wait_until
from tests.support.otlp import OtlpReceiver, attributes, data_points, metrics_of

PIPELINE = """\
stages: [build, test]
compile:
  stage: build
  script: [echo compiled]
unit:
  stage: test
  script: ["exit 4"]
"""
STAGES = {stage.value for stage in BuildStage}


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def spans_when_the_run_ended(receiver: OtlpReceiver) -> list[Span]:
    """Wait for the pipeline-run span; every job and stage span ended, and was queued, before."""

    def ended() -> list[Span] | None:
        spans = [s for _, s in receiver.spans()]
        return (
            spans if any(CICD_PIPELINE_RESULT in attributes(s.attributes) for s in spans) else None
        )

    return wait_until(ended, 15, what="the pipeline-run span")


def test_a_two_stage_pipeline_is_one_trace_with_every_attribute(
    start_runner: StartRunner, tmp_path: Path
) -> None:
    """pipeline-run span (SERVER, cicd.pipeline.result) -> job spans (INTERNAL) -> stage spans."""
    with OtlpReceiver() as receiver:
        runner = start_runner(
            'concurrent = 1\n[[runners]]\nname = "semconv"\n',
            env={
                "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
                "OTEL_BSP_SCHEDULE_DELAY": "50",
                "OTEL_METRIC_EXPORT_INTERVAL": "200",
            },
        )
        project = runner.home / "demo"
        project.mkdir()
        (project / ".alloy-ci.yml").write_text(PIPELINE)
        git(project, "init", "-q", "-b", "main")
        git(project, "add", ".")
        git(project, "commit", "-q", "-m", "one")
        sha = git(project, "rev-parse", "HEAD")
        args = ["submit", "--file", str(project / ".alloy-ci.yml"), "--wait", "--timeout", "30"]
        done = run_cli(args, runner.home)
        ids = {m[2]: int(m[1]) for m in re.finditer(r"job (\d+) (\w+) \(", done.stdout)}
        assert set(ids) == {"compile", "unit"}, done.stdout + done.stderr
        unit = Spool(runner.home / ".alloy-runner" / "spool").result(ids["unit"])
        assert unit is not None
        spans = spans_when_the_run_ended(receiver)
        [run] = [s for s in spans if CICD_PIPELINE_RESULT in attributes(s.attributes)]
        check_metrics(receiver, runner, project)
    assert {s.trace_id for s in spans} == {run.trace_id}  # one trace
    assert run.kind == Span.SPAN_KIND_SERVER and run.parent_span_id == b""
    got = attributes(run.attributes)
    assert got[CICD_PIPELINE_RESULT] == CicdPipelineResultValues.FAILURE.value
    assert got[ERROR_TYPE] == "script_failure"
    assert got[CICD_PIPELINE_NAME] == "demo"
    assert got[CICD_PIPELINE_RUN_ID] == str(unit.pipeline_id)
    assert got[CICD_PIPELINE_RUN_URL_FULL].startswith("file://")
    assert got[CICD_PIPELINE_ACTION_NAME] == "RUN"
    assert run.name == "RUN demo"
    jobs = {s.name: s for s in spans if s.parent_span_id == run.span_id}
    assert set(jobs) == {"compile", "unit"}
    expected: dict[str, dict[str, Any]] = {
        "compile": {
            CICD_PIPELINE_TASK_TYPE: CicdPipelineTaskTypeValues.BUILD.value,
            CICD_PIPELINE_TASK_RUN_RESULT: CicdPipelineTaskRunResultValues.SUCCESS.value,
        },
        "unit": {
            CICD_PIPELINE_TASK_TYPE: CicdPipelineTaskTypeValues.TEST.value,
            CICD_PIPELINE_TASK_RUN_RESULT: CicdPipelineTaskRunResultValues.FAILURE.value,
            ERROR_TYPE: "script_failure",
        },
    }
    for name, span in jobs.items():
        assert span.kind == Span.SPAN_KIND_INTERNAL
        attrs = attributes(span.attributes)
        assert attrs == {
            CICD_PIPELINE_NAME: "demo",
            CICD_PIPELINE_RUN_ID: got[CICD_PIPELINE_RUN_ID],
            CICD_PIPELINE_RUN_URL_FULL: got[CICD_PIPELINE_RUN_URL_FULL],
            CICD_PIPELINE_TASK_NAME: name,
            CICD_PIPELINE_TASK_RUN_ID: str(ids[name]),
            CICD_PIPELINE_TASK_RUN_URL_FULL: (
                runner.home / ".alloy-runner" / "spool" / "work" / str(ids[name])
            ).as_uri(),
            CICD_WORKER_ID: "semconv",
            CICD_WORKER_NAME: "semconv",
            VCS_REF_HEAD_NAME: "main",
            VCS_REF_HEAD_REVISION: sha,
            "vcs.ref.head.type": "branch",
            VCS_REPOSITORY_URL_FULL: project.resolve().as_uri(),
            **expected[name],
        }
        stages = [s for s in spans if s.parent_span_id == span.span_id]
        assert {s.name for s in stages} <= STAGES
        assert {"prepare_script", "build_script"} <= {s.name for s in stages}


HELD = """\
held:
  stage: deploy
  script: ['while [ ! -e "$GATE" ]; do sleep 0.05; done']
"""


def points(receiver: OtlpReceiver, name: str) -> dict[tuple[tuple[str, Any], ...], Any]:
    """Return the data points of `name` in the latest export that has it, by attributes."""
    for request in reversed(receiver.metric_requests()):
        metric = metrics_of(request.message).get(name)
        if metric is not None:
            return {tuple(sorted(attributes(p.attributes).items())): p for p in data_points(metric)}
    return {}


def value(point: Any) -> float:
    return float(getattr(point, point.WhichOneof("value")))


def check_metrics(receiver: OtlpReceiver, runner: RunnerProcess, project: Path) -> None:
    """The semconv metrics of the ended pipeline, then of a running one; none on /metrics."""
    failed = ((CICD_PIPELINE_NAME, "demo"), (ERROR_TYPE, "script_failure"))
    errors = wait_until(lambda: points(receiver, CICD_PIPELINE_RUN_ERRORS).get(failed), 10)
    assert value(errors) == 1
    durations = points(receiver, CICD_PIPELINE_RUN_DURATION)
    executing = (
        (CICD_PIPELINE_NAME, "demo"),
        (CICD_PIPELINE_RESULT, "failure"),
        (CICD_PIPELINE_RUN_STATE, "executing"),
        (ERROR_TYPE, "script_failure"),
    )
    pending = ((CICD_PIPELINE_NAME, "demo"), (CICD_PIPELINE_RUN_STATE, "pending"))
    assert set(durations) == {executing, pending}
    assert durations[executing].count == 1 and durations[executing].sum > 0
    assert metrics_of(receiver.metric_requests()[-1].message)  # exports go on
    (project / ".alloy-ci.yml").write_text(HELD)
    gate = project / "gate"
    args = ["submit", "--file", str(project / ".alloy-ci.yml"), "--var", f"GATE={gate}"]
    assert run_cli(args, runner.home).returncode == 0
    busy = ((CICD_WORKER_STATE, "busy"),)
    active = ((CICD_PIPELINE_NAME, "demo"), (CICD_PIPELINE_RUN_STATE, "executing"))

    def running() -> bool:
        workers, runs = (
            points(receiver, CICD_WORKER_COUNT),
            points(receiver, CICD_PIPELINE_RUN_ACTIVE),
        )
        return (
            busy in workers
            and value(workers[busy]) == 1
            and active in runs
            and value(runs[active]) == 1
        )

    wait_until(running, 10, what="a busy worker and an executing run")
    gate.touch()
    assert not [name for name in runner.families() if name.startswith("cicd")]
