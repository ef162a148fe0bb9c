"""Where OTLP goes (file and environment), and how a failing sink is logged."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from alloy_runner.config.load import parse_config
from alloy_runner.config.model import OtlpConfig
from alloy_runner.exceptions import ConfigError
from alloy_runner.telemetry.otlp.targets import ExportHealth, resolve


def test_no_endpoint_anywhere_means_no_otlp() -> None:
    """Without an endpoint in the file or the environment, nothing is pushed."""
    assert not resolve(OtlpConfig(), {}).enabled


def test_the_file_endpoint_serves_both_signals_with_their_paths() -> None:
    """`endpoint` is a base URL: /v1/metrics and /v1/traces are appended."""
    targets = resolve(
        OtlpConfig(endpoint="http://collector:4318/", headers=(("a", "1"),), timeout=3.0), {}
    )
    assert targets.metrics is not None and targets.traces is not None
    assert targets.metrics.endpoint == "http://collector:4318/v1/metrics"
    assert targets.traces.endpoint == "http://collector:4318/v1/traces"
    assert targets.metrics.headers == {"a": "1"}
    assert targets.traces.timeout == 3.0
    assert targets.interval == 60.0


def test_the_environment_wins_over_the_file() -> None:
    """The standard OTEL_* variables win over [telemetry.otlp], as METRICS_SERVER does."""
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://env:4318",
        "OTEL_EXPORTER_OTLP_HEADERS": "a=2,b=3",
        "OTEL_METRIC_EXPORT_INTERVAL": "5000",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "7000",
    }
    targets = resolve(OtlpConfig(endpoint="http://file:4318", headers=(("a", "1"),)), env)
    assert targets.metrics is not None
    assert targets.metrics.endpoint == "http://env:4318/v1/metrics"
    assert targets.metrics.headers == {"a": "2", "b": "3"}
    # Milliseconds, as the specification says (the Python exporters would read seconds).
    assert targets.interval == 5.0
    assert targets.metrics.timeout == 7.0


def test_a_signal_endpoint_alone_enables_only_that_signal() -> None:
    """OTEL_EXPORTER_OTLP_TRACES_ENDPOINT alone sends traces, used as given, and no metrics."""
    targets = resolve(
        OtlpConfig(), {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://tempo:4318/custom"}
    )
    assert targets.metrics is None
    assert targets.traces is not None and targets.traces.endpoint == "https://tempo:4318/custom"


def test_an_endpoint_without_a_scheme_is_refused_with_its_name() -> None:
    """A bad endpoint in the environment stops the start with the variable's name."""
    with pytest.raises(ConfigError, match="OTEL_EXPORTER_OTLP_ENDPOINT: expected an http"):
        resolve(OtlpConfig(), {"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"})


def test_the_otlp_table_is_read_from_config_toml() -> None:
    """[telemetry.otlp] sets endpoint, headers, interval and timeout."""
    config = parse_config(
        """
[telemetry.otlp]
endpoint = "http://otel-collector:4318"
headers = { authorization = "Bearer x" }
interval = 15
timeout = 2.5
""",
        "config.toml",
    )
    assert config.otlp == OtlpConfig(
        "http://otel-collector:4318", (("authorization", "Bearer x"),), 15.0, 2.5
    )
    assert config.warnings == ()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('endpoint = "otel:4318"', "key 'telemetry.otlp.endpoint': expected an http"),
        (
            "interval = 0",
            "key 'telemetry.otlp.interval': expected a number of seconds > 0 and <= 604800",
        ),
        ("headers = { a = 1 }", "key 'telemetry.otlp.headers': expected a table of strings"),
    ],
)
def test_a_bad_otlp_key_is_an_error_naming_it(text: str, message: str) -> None:
    """A bad value in [telemetry.otlp] is refused with the full key."""
    with pytest.raises(ConfigError, match=message):
        parse_config(f"[telemetry.otlp]\n{text}\n", "config.toml")


def test_an_unknown_otlp_key_is_a_warning() -> None:
    """An unknown key in [telemetry.otlp] is ignored with a warning naming it."""
    config = parse_config('[telemetry.otlp]\nendpoit = "x"\n', "config.toml")
    assert config.warnings == ("config.toml: unknown key 'telemetry.otlp.endpoit' is ignored",)


def test_a_failing_sink_is_logged_once_per_outage(caplog: pytest.LogCaptureFixture) -> None:
    """Many failed exports make one warning; the first success after them one info line."""
    health = ExportHealth("traces", "http://c:4318/v1/traces")
    caplog.set_level(logging.INFO, logger="alloy_runner")
    for _ in range(5):
        health.exported(False, ConnectionError("[Errno 111] Connection refused"))
    health.exported(True)
    health.exported(True)
    health.exported(False, TimeoutError("slow"))
    messages = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert [level for level, _ in messages] == ["WARNING", "INFO", "WARNING"]
    assert "([Errno 111] Connection refused)" in messages[0][1]
    assert "works again" in messages[1][1]


def test_the_libraries_complaints_are_demoted_to_debug(caplog: pytest.LogCaptureFixture) -> None:
    """The exporter's own per-export errors do not reach the log above debug level."""
    health = ExportHealth("metrics", "http://c:4318/v1/metrics")
    health.install()
    library = logging.getLogger("opentelemetry.exporter.otlp.proto.http.metric_exporter")
    try:
        with caplog.at_level(logging.INFO):
            library.error("Failed to export metrics batch code: 404, reason: Not Found")
            health.exported(False)
    finally:
        health.uninstall()
    [record] = caplog.records
    assert record.name == "alloy_runner.telemetry.otlp.targets"
    assert "404, reason: Not Found" in record.getMessage()


def test_sdk_disabled_turns_every_signal_off() -> None:
    """OTEL_SDK_DISABLED=true (any case): nothing is pushed, whatever else is set."""
    env = {"OTEL_SDK_DISABLED": "TRUE", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://env:4318"}
    targets = resolve(OtlpConfig(endpoint="http://file:4318"), env)
    assert targets.disabled and not targets.enabled and not targets.tracing
    assert "OTEL_SDK_DISABLED=true" in targets.summary()


def test_a_boolean_that_is_not_true_or_false_is_warned_and_false(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The spec's booleans: "yes" is not true; it is read as false, with a warning."""
    with caplog.at_level(logging.WARNING):
        targets = resolve(OtlpConfig(endpoint="http://file:4318"), {"OTEL_SDK_DISABLED": "yes"})
    assert not targets.disabled and targets.enabled
    assert "OTEL_SDK_DISABLED='yes' is not true or false" in caplog.text


def test_grpc_takes_the_endpoint_as_given_and_its_own_default() -> None:
    """Over gRPC the service names the signal: no /v1/... path; asked for with no endpoint
    anywhere, an exporter goes to the spec's default for its protocol."""
    env = {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4317"}
    targets = resolve(OtlpConfig(), env)
    assert targets.metrics is not None and targets.metrics.endpoint == "collector:4317"
    asked = resolve(OtlpConfig(), {"OTEL_TRACES_EXPORTER": "otlp"})
    assert asked.metrics is None
    assert asked.traces is not None
    assert asked.traces.endpoint == "http://localhost:4318/v1/traces"


def test_metric_export_timeout_and_exemplar_filter_are_read() -> None:
    """OTEL_METRIC_EXPORT_TIMEOUT is milliseconds; OTEL_METRICS_EXEMPLAR_FILTER is kept."""
    env = {"OTEL_METRIC_EXPORT_TIMEOUT": "2500", "OTEL_METRICS_EXEMPLAR_FILTER": "ALWAYS_OFF"}
    targets = resolve(OtlpConfig(endpoint="http://c:4318"), env)
    assert targets.export_timeout == 2.5
    assert targets.exemplar_filter == "always_off"


def test_a_client_certificate_without_its_key_is_refused(tmp_path: Path) -> None:
    """The client certificate and key go together: one alone stops the start, naming it."""
    cert = tmp_path / "client.pem"
    cert.write_text("not read before the pair is complete\n")
    env = {"OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE": str(cert)}
    with pytest.raises(ConfigError, match="OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE: the"):
        resolve(OtlpConfig(endpoint="https://c:4318"), env)
