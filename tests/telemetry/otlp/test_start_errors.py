"""An OTEL_* value that cannot work stops `alloy-runner run` before it starts: exit 2, one line.

In-process through `main(argv)`, the real `daemon.run` and the real wiring that
resolves the OTLP targets (the `invoke_wiring` fixture); only the daemon that
would bind and run is a stub. tests/e2e/test_otel_variables.py keeps one case
against the real executable. The endpoint is loopback: nothing is sent before
the refusal, and nothing listens there.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from tests.support.cli import Invoke, assert_one_error_line

EXIT_USAGE = 2
RUNNER = 'concurrent = 1\n[[runners]]\nname = "shell"\n'
ENDPOINT = "http://127.0.0.1:1"

BAD: Mapping[str, tuple[dict[str, str], str]] = {
    "http/json": (
        {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"},
        "OTEL_EXPORTER_OTLP_PROTOCOL: http/json is not supported",
    ),
    "protocol": ({"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "udp"}, "expected grpc or http/protobuf"),
    "exporter": ({"OTEL_TRACES_EXPORTER": "otlp,zipkin"}, "unknown exporter 'zipkin'"),
    "none+": ({"OTEL_METRICS_EXPORTER": "none,otlp"}, "'none' cannot be listed"),
    "propagator": ({"OTEL_PROPAGATORS": "tracecontext,b4"}, "unknown propagator 'b4'"),
    "certificate": (
        {"OTEL_EXPORTER_OTLP_CERTIFICATE": "/nonexistent/ca.pem"},
        "OTEL_EXPORTER_OTLP_CERTIFICATE: /nonexistent/ca.pem: no such file",
    ),
    "timeout": ({"OTEL_METRIC_EXPORT_TIMEOUT": "soon"}, "expected milliseconds"),
    "exemplars": ({"OTEL_METRICS_EXEMPLAR_FILTER": "sometimes"}, "OTEL_METRICS_EXEMPLAR_FILTER"),
    "compression": ({"OTEL_EXPORTER_OTLP_COMPRESSION": "zstd"}, "expected gzip or deflate"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_value_that_cannot_work_exits_2_with_one_line(
    invoke_wiring: Invoke, tmp_path: Path, case: str
) -> None:
    """Each variable's impossible value stops `run` before it starts, naming the variable."""
    env, message = BAD[case]
    config = tmp_path / "config.toml"
    config.write_text(RUNNER + f'[telemetry.otlp]\nendpoint = "{ENDPOINT}"\n')
    ran = invoke_wiring(["run", "--config", str(config), "--metrics-server", ""], env)
    assert_one_error_line(ran, EXIT_USAGE, message)


def test_a_bad_tls_file_is_refused(invoke_wiring: Invoke, tmp_path: Path) -> None:
    """A certificate that is not PEM is refused with its variable's name."""
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate\n")
    env = {"OTEL_EXPORTER_OTLP_CERTIFICATE": str(bad), "OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT}
    ran = invoke_wiring(["run", "--metrics-server", ""], env)
    assert_one_error_line(
        ran, EXIT_USAGE, "OTEL_EXPORTER_OTLP_CERTIFICATE", "not a PEM certificate"
    )
