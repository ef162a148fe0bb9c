"""The OTEL_* variables of the SDK configuration spec, each seen at a real receiver.

A real runner runs a real job; what it pushes arrives at the OTLP/HTTP
receiver or the OTLP/gRPC one (the collector's services on grpcio), or
nowhere; a value that cannot work stops it with one line and exit status 2.
"""

from __future__ import annotations

import json
import re
import signal
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from alloy_runner.coordinator.spool.store import Spool
from tests.support import RunnerProcess, StartRunner, run_cli, wait_until
from tests.support.otlp import OtlpReceiver, ReceivedStore, attributes
from tests.support.otlp_grpc import GrpcOtlpReceiver, GrpcTls
from tests.support.tls import CertPair, make_ca, make_cert

RUNNER = 'concurrent = 1\n[[runners]]\nname = "shell"\n'
FAST = {"OTEL_METRIC_EXPORT_INTERVAL": "200", "OTEL_BSP_SCHEDULE_DELAY": "50"}
JOB = 'ctx:\n  script:\n    - env | grep -E "^(TRACEPARENT|TRACESTATE|BAGGAGE)=" > "$OUT" || true\n'


def run_job(runner: RunnerProcess, out: Path, *variables: str) -> dict[str, str]:
    """Run the one-job pipeline; return the trace-context variables the script saw."""
    (runner.home / ".alloy-ci.yml").write_text(JOB)
    args = ["submit", "--var", f"OUT={out}"]
    for variable in variables:
        args += ["--var", variable]
    done = run_cli(args, runner.home)
    assert done.returncode == 0, done.stderr
    (job,) = (int(n) for n in re.findall(r"^  job (\d+) ", done.stdout, re.MULTILINE))
    spool = Spool(runner.home / ".alloy-runner" / "spool")
    result = wait_until(lambda: spool.result(job), 30, what=f"job {job} finished")
    assert result.status == "success"
    return dict(line.split("=", 1) for line in out.read_text().splitlines())


def job_span_arrives(store: ReceivedStore) -> None:
    wait_until(lambda: any(s.name == "ctx" for _, s in store.spans()), 10, what="the job's span")


def metrics_arrive(store: ReceivedStore) -> None:
    wait_until(lambda: "ci.runner.jobs" in store.metric_names(), 10, what="ci.runner.jobs")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, CertPair]:
    d = tmp_path_factory.mktemp("pki")
    ca = make_ca(d)
    return {
        "ca": ca,
        "server": make_cert(d, "collector", ca),
        "client": make_cert(d, "runner", ca, client=True),
    }


@pytest.fixture
def grpc_receiver() -> Iterator[GrpcOtlpReceiver]:
    with GrpcOtlpReceiver() as receiver:
        yield receiver


def test_grpc_carries_both_signals_with_headers(
    start_runner: StartRunner, grpc_receiver: GrpcOtlpReceiver, tmp_path: Path
) -> None:
    """OTEL_EXPORTER_OTLP_PROTOCOL=grpc: metrics and spans arrive over gRPC, headers as metadata."""
    env = {
        **FAST,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_EXPORTER_OTLP_ENDPOINT": grpc_receiver.endpoint,
        "OTEL_EXPORTER_OTLP_HEADERS": "x-tenant=grpc-tests",
    }
    runner = start_runner(RUNNER, env=env)
    seen = run_job(runner, tmp_path / "ctx")
    job_span_arrives(grpc_receiver)
    metrics_arrive(grpc_receiver)
    assert grpc_receiver.trace_requests()[0].headers["x-tenant"] == "grpc-tests"
    (span,) = [s for _, s in grpc_receiver.spans() if s.name == "ctx"]
    assert seen["TRACEPARENT"].split("-")[1] == span.trace_id.hex()
    assert f"traces to {grpc_receiver.endpoint} (grpc)" in runner.stderr_text


def test_grpc_host_port_is_tls_unless_insecure(
    start_runner: StartRunner, grpc_receiver: GrpcOtlpReceiver, tmp_path: Path
) -> None:
    """A gRPC endpoint without a scheme is TLS by default (a plaintext receiver gets nothing
    and the failure is logged once); OTEL_EXPORTER_OTLP_INSECURE=true makes it plaintext."""
    bare = grpc_receiver.endpoint.removeprefix("http://")
    env = {
        **FAST,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_EXPORTER_OTLP_ENDPOINT": bare,
        "OTEL_TRACES_EXPORTER": "none",
    }
    tls = start_runner(RUNNER, env=env)
    tls.wait_for_line(rf"OTLP metrics: export to {re.escape(bare)} failed", timeout=15)
    assert grpc_receiver.metric_requests() == []
    tls.stop()
    start_runner(RUNNER, env={**env, "OTEL_EXPORTER_OTLP_INSECURE": "true"})
    metrics_arrive(grpc_receiver)


def test_per_signal_protocols_and_exporter_none(
    start_runner: StartRunner, grpc_receiver: GrpcOtlpReceiver, tmp_path: Path
) -> None:
    """Metrics over gRPC and traces over HTTP by their own variables; then each signal off by
    OTEL_*_EXPORTER=none (and without spans the job gets no TRACEPARENT)."""
    with OtlpReceiver() as http:
        env = {
            **FAST,
            "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "grpc",
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": grpc_receiver.endpoint,
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": http.endpoint + "/v1/traces",
        }
        split = start_runner(RUNNER, env=env)
        run_job(split, tmp_path / "a")
        metrics_arrive(grpc_receiver)
        job_span_arrives(http)
        assert grpc_receiver.trace_requests() == [] and http.metric_requests() == []
        split.stop()
    with OtlpReceiver() as http:
        base = {**FAST, "OTEL_EXPORTER_OTLP_ENDPOINT": http.endpoint}
        no_metrics = start_runner(
            RUNNER, env={**base, "OTEL_METRICS_EXPORTER": "none", "OTEL_SERVICE_NAME": "no-m"}
        )
        no_traces = start_runner(
            RUNNER, env={**base, "OTEL_TRACES_EXPORTER": "none", "OTEL_SERVICE_NAME": "no-t"}
        )
        run_job(no_metrics, tmp_path / "b")
        assert "TRACEPARENT" not in run_job(no_traces, tmp_path / "c")
        job_span_arrives(http)
        metrics_arrive(http)
        for runner in (no_metrics, no_traces):
            runner.signal(signal.SIGTERM)
            assert runner.wait() == 0
        span_services = {resource["service.name"] for resource, _ in http.spans()}
        metric_services = {
            attributes(rm.resource.attributes)["service.name"]
            for r in http.metric_requests()
            for rm in r.message.resource_metrics
        }
        assert span_services == {"no-m"} and metric_services == {"no-t"}


def test_console_exporters_print_to_stdout(start_runner: StartRunner, tmp_path: Path) -> None:
    """OTEL_TRACES_EXPORTER=console prints the job's span as JSON on stdout, without a collector;
    OTEL_METRICS_EXPORTER=otlp,console does both: pushes to the endpoint and prints."""
    out = tmp_path / "stdout"
    with OtlpReceiver() as http:
        env = {
            **FAST,
            "OTEL_TRACES_EXPORTER": "console",
            "OTEL_METRICS_EXPORTER": "otlp,console",
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": http.endpoint + "/v1/metrics",
        }
        runner = start_runner(RUNNER, env=env, stdout=out)
        run_job(runner, tmp_path / "ctx")
        metrics_arrive(http)
        runner.signal(signal.SIGTERM)
        assert runner.wait() == 0
        assert http.trace_requests() == []
    text = out.read_text()
    assert '"name": "ctx"' in text
    assert '"cicd.pipeline.task.name": "ctx"' in text
    assert '"ci.runner.jobs"' in text and '"unit": "{job}"' in text
    assert "to the console (stdout)" in runner.stderr_text


def test_tls_client_certificates_over_https_and_grpc(
    start_runner: StartRunner, pki: dict[str, CertPair], tmp_path: Path
) -> None:
    """The TLS variables: the CA verifies the collector, the client pair authenticates the
    runner to a receiver that requires it, over HTTPS and over gRPC."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki["server"].cert, pki["server"].key)
    context.load_verify_locations(pki["ca"].cert)
    context.verify_mode = ssl.CERT_REQUIRED
    tls = {
        "OTEL_EXPORTER_OTLP_CERTIFICATE": str(pki["ca"].cert),
        "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": str(pki["client"].cert),
        "OTEL_EXPORTER_OTLP_CLIENT_KEY": str(pki["client"].key),
    }
    grpc_tls = GrpcTls(pki["server"].cert, pki["server"].key, client_ca=pki["ca"].cert)
    with OtlpReceiver(tls=context) as https, GrpcOtlpReceiver(tls=grpc_tls) as grpcs:
        assert https.endpoint.startswith("https://") and grpcs.endpoint.startswith("https://")
        env = {
            **FAST,
            **tls,
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": https.endpoint + "/v1/traces",
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": grpcs.endpoint,
            "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "grpc",
        }
        runner = start_runner(RUNNER, env=env)
        run_job(runner, tmp_path / "ctx")
        job_span_arrives(https)
        metrics_arrive(grpcs)


def test_baggage_and_tracestate_travel_with_the_propagators(
    start_runner: StartRunner, tmp_path: Path
) -> None:
    """OTEL_PROPAGATORS decides what a job's span hands its scripts: tracecontext,baggage (the
    default) passes TRACESTATE and BAGGAGE on; tracecontext alone drops the baggage."""
    parent = "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"
    given = (f"TRACEPARENT={parent}", "TRACESTATE=vendor=x", "BAGGAGE=team=ci")
    with OtlpReceiver() as http:
        env = {**FAST, "OTEL_EXPORTER_OTLP_ENDPOINT": http.endpoint}
        both = start_runner(RUNNER, env=env)
        seen = run_job(both, tmp_path / "a", *given)
        assert seen["TRACEPARENT"].split("-")[1] == "ab" * 16
        assert seen["TRACEPARENT"] != parent  # the job's own span, child of the given one
        assert seen["TRACESTATE"] == "vendor=x" and seen["BAGGAGE"] == "team=ci"
        only = start_runner(RUNNER, env={**env, "OTEL_PROPAGATORS": "tracecontext"})
        seen = run_job(only, tmp_path / "b", f"TRACEPARENT={parent}")
        assert "BAGGAGE" not in seen and seen["TRACEPARENT"].split("-")[1] == "ab" * 16


def test_a_bad_tls_file_is_refused(tmp_path: Path) -> None:
    """A certificate that is not PEM is refused with its variable's name.

    The executable's smoke of the values that cannot work; every one is refused
    in-process in tests/telemetry/otlp/test_start_errors.py.
    """
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate\n")
    done = run_cli(
        ["run", "--metrics-server", ""],
        tmp_path,
        {"OTEL_EXPORTER_OTLP_CERTIFICATE": str(bad), "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:1"},
    )
    assert done.returncode == 2 and "not a PEM certificate" in done.stderr, done.stderr
    assert json.dumps(done.stderr).count("\\n") == 1
