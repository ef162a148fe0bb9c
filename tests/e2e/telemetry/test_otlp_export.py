"""The real runner pushing OTLP/HTTP to a receiver in the test while it runs real jobs."""

from __future__ import annotations

import json
import secrets
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.metrics.v1.metrics_pb2 import AGGREGATION_TEMPORALITY_CUMULATIVE
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from opentelemetry.semconv._incubating.attributes.cicd_attributes import (
    CICD_PIPELINE_NAME,
    CICD_PIPELINE_RESULT,
    CICD_PIPELINE_TASK_NAME,
    CICD_PIPELINE_TASK_RUN_ID,
    CICD_PIPELINE_TASK_RUN_RESULT,
    CICD_WORKER_NAME,
)

from alloy_runner.build.states import BuildStage
from alloy_runner.telemetry.otlp.names import OTLP_NAMES
from tests.support.exposition import parse_exposition, parse_openmetrics
from tests.support.http_client import free_port
from tests.support.loopback import SilentListener
from tests.support.otlp import OtlpReceiver, attributes, data_points, metrics_of
from tests.support.polling import wait_until
from tests.support.runner import RunnerProcess, run_cli

PIPELINE = """
stages: [test]
passes:
  script: [echo fine]
fails:
  script: ["exit 3"]
may_fail:
  allow_failure: true
  script: ["exit 1"]
traced:
  script: ['printf "%s" "$TRACEPARENT" > "$TP_FILE"']
"""
RESULTS = {"passes": "success", "fails": "failure", "may_fail": "failure", "traced": "success"}
RUNNER = "shell-otlp"
SHUTDOWN_TIMEOUT = 1.0  # the runner gives its sinks max(1, min(5, this)) seconds at exit
TASK_RUN_ID = CICD_PIPELINE_TASK_RUN_ID
STAGES = {stage.value for stage in BuildStage}
FAST_EXPORT = {"OTEL_BSP_SCHEDULE_DELAY": "100"}  # spans leave within 0.1 s of ending


def runner_config(spool: Path, endpoint: str, timeout: float = 2.0) -> str:
    return f"""
concurrent = 2
shutdown_timeout = {SHUTDOWN_TIMEOUT}
spool_dir = "{spool}"

[[runners]]
name = "{RUNNER}"

[telemetry.otlp]
endpoint = "{endpoint}"
interval = 0.3
timeout = {timeout}
headers = {{ "x-tenant" = "alloy-tests" }}
"""


def submit(home: Path, spool: Path, *args: str) -> dict[str, int]:
    """Submit the test pipeline and wait for it; return its job ids by name."""
    done = run_cli(
        [
            "submit",
            "--json",
            "--spool",
            str(spool),
            "--file",
            str(home / ".alloy-ci.yml"),
            "--wait",
            "--timeout",
            "30",
            *args,
        ],
        home,
        timeout=40,
    )
    document = json.loads(done.stdout or "null")
    assert isinstance(document, dict) and document["jobs"], done.stderr
    assert all(job["result"]["id"] == job["id"] for job in document["jobs"]), document
    return {job["name"]: job["id"] for job in document["jobs"]}


def jobs_counted(runner: RunnerProcess) -> float:
    families = parse_exposition(runner.scrape()[1])
    family = families.get("ci_runner_jobs")
    return sum(s.value for s in family.samples if s.name.endswith("_total")) if family else 0.0


@dataclass
class Run:
    """A runner that ran the pipeline twice: plain, and with a TRACEPARENT given to `traced`."""

    runner: RunnerProcess
    receiver: OtlpReceiver
    jobs: dict[str, int]
    traced_job: int
    parent_trace: str
    parent_span: str
    plain_tp: str
    continued_tp: str


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    home = tmp_path_factory.mktemp("otlp")
    spool = home / "spool"
    (home / ".alloy-ci.yml").write_text(PIPELINE)
    with OtlpReceiver() as receiver:
        runner = RunnerProcess(
            home, runner_config(spool, receiver.endpoint), env=FAST_EXPORT
        ).start()
        try:
            jobs = submit(home, spool, "--var", f"TP_FILE={home / 'plain.tp'}")
            trace, span = secrets.token_hex(16), secrets.token_hex(8)
            continued = submit(
                home,
                spool,
                "traced",
                "--var",
                f"TP_FILE={home / 'continued.tp'}",
                "--var",
                f"TRACEPARENT=00-{trace}-{span}-01",
            )
            wait_until(lambda: jobs_counted(runner) == 5, 10, what="5 jobs counted")
            yield Run(
                runner,
                receiver,
                jobs,
                continued["traced"],
                trace,
                span,
                (home / "plain.tp").read_text(),
                (home / "continued.tp").read_text(),
            )
        finally:
            runner.stop()


def labels(point: Any) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted(attributes(point.attributes).items()))


def value(point: Any) -> float:
    return float(getattr(point, point.WhichOneof("value")))


def export_after(receiver: OtlpReceiver, moment: float) -> dict[str, Any]:
    """Wait for a metrics export that began after `moment`; return its metrics by name."""
    received = wait_until(
        lambda: [
            r
            for r in receiver.metric_requests()
            if r.at > moment + 0.05 and "ci.runner.jobs" in metrics_of(r.message)
        ],
        10,
        what="a metrics export after the scrape",
    )  # (the CI/CD semconv metrics go in requests of their own)
    return metrics_of(received[0].message)


def scraped(families: dict[str, Any], name: str, suffix: str) -> dict[Any, float]:
    return {
        tuple(sorted(s.labels.items())): s.value
        for s in families[name].samples
        if s.name == name + suffix
    }


def test_counters_pushed_over_otlp_equal_those_on_metrics_after_jobs_ended(run: Run) -> None:
    """Once jobs have ended, OTLP carries the same families as /metrics (under their OTel names
    and UCUM units) and the same job counts."""
    scraped_at = time.time()
    before = parse_exposition(run.runner.scrape()[1])
    by_otel_name = export_after(run.receiver, scraped_at)
    after = parse_exposition(run.runner.scrape()[1])
    catalog_name = {otel: name for name, (otel, _unit) in OTLP_NAMES.items()}
    assert set(by_otel_name) <= set(catalog_name)  # no Prometheus-style name goes over OTLP
    pushed = {catalog_name[n]: m for n, m in by_otel_name.items()}

    assert set(before) - {"target_info"} <= set(pushed) <= set(after)
    assert by_otel_name["ci.runner.jobs"].unit == "{job}"
    assert by_otel_name["ci.runner.job.duration"].unit == "s"
    assert by_otel_name["process.cpu.time"].unit == "s"
    assert by_otel_name["process.memory.usage"].unit == "By"
    for name in ("ci_runner_jobs", "ci_runner_failed_jobs"):
        metric = pushed[name]
        assert metric.sum.is_monotonic
        assert metric.sum.aggregation_temporality == AGGREGATION_TEMPORALITY_CUMULATIVE
        assert {labels(p): value(p) for p in data_points(metric)} == scraped(
            before, name, "_total"
        ), name
    jobs = {labels(p): value(p) for p in data_points(pushed["ci_runner_jobs"])}
    assert jobs[(("runner", RUNNER), ("state", "failed"))] == 2
    assert jobs[(("runner", RUNNER), ("state", "success"))] == 3
    for name in ("ci_runner_job_duration_seconds", "ci_runner_job_stage_duration_seconds"):
        points = list(data_points(pushed[name]))
        assert {labels(p): p.count for p in points} == scraped(before, name, "_count"), name
        assert {labels(p): p.sum for p in points} == pytest.approx(scraped(before, name, "_sum"))


def job_spans(run: Run, job_id: int) -> tuple[Span, list[Span]]:
    """Wait for the job's span; return it and its stage spans."""

    def spans() -> list[Span]:
        received = [span for _, span in run.receiver.spans()]
        mine = [
            s
            for s in received
            if attributes(s.attributes).get(CICD_PIPELINE_TASK_RUN_ID) == str(job_id)
        ]
        return mine if any(s.name not in STAGES for s in mine) else []

    mine = wait_until(spans, 10, what=f"the spans of job {job_id}")
    [job] = [s for s in mine if s.name not in STAGES]
    return job, [s for s in mine if s is not job]


def run_span(run: Run, trace_id: bytes) -> Span:
    """Wait for the pipeline-run span of the trace `trace_id` and return it."""

    def found() -> list[Span]:
        return [
            s
            for _, s in run.receiver.spans()
            if s.trace_id == trace_id and CICD_PIPELINE_RESULT in attributes(s.attributes)
        ]

    [span] = wait_until(found, 10, what="the pipeline-run span")
    return span


def test_a_pipeline_is_one_trace_with_a_span_per_job_and_stage(run: Run) -> None:
    """A spool pipeline is one trace: the pipeline-run span (SERVER), a child span per job
    (INTERNAL, named after it), and under each a span per stage run."""
    traces = set()
    for name, job_id in run.jobs.items():
        job, stages = job_spans(run, job_id)
        assert job.name == name
        assert job.kind == Span.SPAN_KIND_INTERNAL
        assert {s.name for s in stages} >= {"prepare_script", "build_script"}
        assert all(s.trace_id == job.trace_id and s.parent_span_id == job.span_id for s in stages)
        attrs = attributes(job.attributes)
        assert attrs[CICD_PIPELINE_TASK_NAME] == name
        assert attrs[CICD_PIPELINE_TASK_RUN_ID] == str(job_id)
        assert attrs[CICD_WORKER_NAME] == RUNNER
        assert attrs[CICD_PIPELINE_NAME] == run.runner.home.name
        assert attrs[CICD_PIPELINE_TASK_RUN_RESULT] == RESULTS[name]
        failed = RESULTS[name] != "success"
        assert (job.status.code == Status.STATUS_CODE_ERROR) is failed
        build_script = next(s for s in stages if s.name == "build_script")
        assert (build_script.status.code == Status.STATUS_CODE_ERROR) is failed
        traces.add(job.trace_id)
    [trace_id] = traces
    pipeline = run_span(run, trace_id)
    assert pipeline.kind == Span.SPAN_KIND_SERVER and pipeline.parent_span_id == b""
    assert all(job_spans(run, j)[0].parent_span_id == pipeline.span_id for j in run.jobs.values())
    attrs = attributes(pipeline.attributes)
    assert attrs[CICD_PIPELINE_RESULT] == "failure"  # `fails` may not fail
    assert attrs[CICD_PIPELINE_NAME] == run.runner.home.name
    assert pipeline.name == f"RUN {run.runner.home.name}"
    resource = run.receiver.spans()[0][0]
    assert resource["service.name"] == "alloy-runner"


def test_the_script_sees_the_traceparent_of_its_job_span(run: Run) -> None:
    """A job's scripts get TRACEPARENT naming the job's own span, so tools inside can join it."""
    job, _ = job_spans(run, run.jobs["traced"])
    version, trace, span, _flags = run.plain_tp.split("-")
    assert (version, trace, span) == ("00", job.trace_id.hex(), job.span_id.hex())


def test_a_job_given_a_traceparent_continues_that_trace(run: Run) -> None:
    """A TRACEPARENT given to `submit` makes the pipeline-run span a child of that span, and the
    job's span a child of the pipeline's, all in that trace."""
    job, stages = job_spans(run, run.traced_job)
    assert job.trace_id.hex() == run.parent_trace
    pipeline = run_span(run, job.trace_id)
    assert pipeline.parent_span_id.hex() == run.parent_span
    assert job.parent_span_id == pipeline.span_id
    assert all(s.trace_id.hex() == run.parent_trace for s in stages)
    _, trace, span, _ = run.continued_tp.split("-")
    assert (trace, span) == (run.parent_trace, job.span_id.hex())


def test_job_duration_buckets_carry_the_job_s_trace_id_as_an_openmetrics_exemplar(
    run: Run,
) -> None:
    """Scraped as OpenMetrics, job-duration buckets link to the trace of a job that fell in them."""
    _, text = run.runner.scrape("application/openmetrics-text; version=1.0.0")
    family = parse_openmetrics(text)["ci_runner_job_duration_seconds"]
    exemplars = [s.exemplar for s in family.samples if s.exemplar is not None]
    assert exemplars, text
    traces = {job_spans(run, job_id)[0].trace_id.hex() for job_id in run.jobs.values()}
    traces.add(run.parent_trace)
    for exemplar in exemplars:
        assert exemplar.labels["trace_id"] in traces
        assert len(exemplar.labels["span_id"]) == 16
        assert exemplar.value >= 0
    # The classic text format has no exemplars.
    assert " # {" not in run.runner.scrape()[1]


def test_config_headers_go_with_every_export(run: Run) -> None:
    """The `headers` of [telemetry.otlp] are sent with metric and trace exports."""
    requests = run.receiver.metric_requests() + run.receiver.trace_requests()
    assert requests
    assert all(r.headers.get("x-tenant") == "alloy-tests" for r in requests)


# --- a collector that is down or stuck ------------------------------------------------------


def run_against(home: Path, endpoint: str, timeout: float) -> tuple[RunnerProcess, float]:
    """Run the pipeline on a runner pushing to `endpoint`; stop it; return it and its stop time."""
    spool = home / "spool"
    (home / ".alloy-ci.yml").write_text(PIPELINE)
    runner = RunnerProcess(home, runner_config(spool, endpoint, timeout), env=FAST_EXPORT)
    runner.start()
    try:
        started = time.monotonic()
        jobs = submit(home, spool, "--var", f"TP_FILE={home / 'tp'}")
        assert time.monotonic() - started < 10, "the jobs waited on the collector"
        assert set(jobs) == set(RESULTS)
        for name, job_id in jobs.items():
            line = runner.wait_for_line(rf"job {job_id} \({name}\) finished: (\w+)", timeout=5)
            assert line[1] == ("success" if RESULTS[name] == "success" else "failed")
        # Metrics go every 0.3 s, so by now several exports failed, and one is under way.
        runner.wait_for_line(r"OTLP traces: export to .* failed", timeout=timeout + 5)
        time.sleep(0.5)
        stopping = time.monotonic()
        runner.signal(signal.SIGTERM)
        assert runner.wait(timeout=15) == 0
        return runner, time.monotonic() - stopping
    finally:
        runner.stop()


def assert_failure_logged_once(runner: RunnerProcess, why: str) -> None:
    for signal_name in ("metrics", "traces"):
        lines = [line for line in runner.stderr_lines if f"OTLP {signal_name}: export" in line]
        assert len(lines) == 1, runner.stderr_text
        assert why in lines[0] and "builds are unaffected" in lines[0]
    assert "Traceback" not in runner.stderr_text


# At exit the runner gives its metrics server and its telemetry half of this each.
EXIT_BUDGET = max(1.0, min(5.0, SHUTDOWN_TIMEOUT))


def test_a_collector_that_refuses_connections_fails_no_job(tmp_path: Path) -> None:
    """Collector down: jobs end as they would, the failure is logged once, shutdown is bounded."""
    runner, stopping = run_against(tmp_path, f"http://127.0.0.1:{free_port()}", timeout=0.5)
    assert_failure_logged_once(runner, "Connection refused")
    assert stopping < EXIT_BUDGET + 0.8, runner.stderr_text


def test_a_collector_that_never_answers_fails_no_job(tmp_path: Path) -> None:
    """Collector stuck: jobs end as they would, the failure is logged once, and the exports
    hanging at exit (3 s each) do not hold the exit past its budget (1 s)."""
    with SilentListener() as collector:
        runner, stopping = run_against(tmp_path, collector.url, timeout=3.0)
    assert_failure_logged_once(runner, "no answer in time")
    assert stopping < EXIT_BUDGET + 0.8, runner.stderr_text
