"""OTEL_* values that the SDK would choke on: one warning or one error in the runner's words."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alloy_runner.config.model import OtlpConfig
from alloy_runner.exceptions import ConfigError
from alloy_runner.telemetry.metrics.setup import make_resource, resource_warnings
from alloy_runner.telemetry.otlp.env_lists import bsp_milliseconds, hide_from_sdk, parse_pairs
from alloy_runner.telemetry.otlp.targets import resolve
from alloy_runner.version import build_info

ENDPOINT = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://[::1"}, "not a URL that parses"),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://[::1"}, "not a URL that parses"),
        ({**ENDPOINT, "OTEL_METRIC_EXPORT_INTERVAL": "0"}, "positive number of milliseconds"),
        ({**ENDPOINT, "OTEL_METRIC_EXPORT_INTERVAL": "-5"}, "non-negative"),
    ],
)
def test_a_value_that_cannot_work_is_one_config_error(env: dict[str, str], message: str) -> None:
    """These used to start a runner that pushed nowhere, or to end in a traceback."""
    with pytest.raises(ConfigError, match=message) as caught:
        resolve(OtlpConfig(), env)
    assert str(caught.value).startswith("OTEL_")


def test_malformed_headers_are_one_warning_and_the_good_ones_are_kept() -> None:
    """`nokeyvalue` is ignored with one warning; `a=b%20c` reaches the exporter decoded."""
    targets = resolve(
        OtlpConfig(), {**ENDPOINT, "OTEL_EXPORTER_OTLP_HEADERS": "nokeyvalue,a=b%20c"}
    )
    assert targets.metrics is not None
    assert targets.metrics.headers == {"a": "b c"}
    assert targets.warnings == ("OTEL_EXPORTER_OTLP_HEADERS: ignoring 'nokeyvalue': not key=value",)


def test_an_unreadable_bsp_delay_is_a_warning_and_the_default() -> None:
    """The SDK logged a traceback for OTEL_BSP_SCHEDULE_DELAY=abc; now one line, and 5000."""
    targets = resolve(OtlpConfig(), {**ENDPOINT, "OTEL_BSP_SCHEDULE_DELAY": "abc"})
    assert targets.schedule_delay_ms == 5000
    assert len(targets.warnings) == 1 and "OTEL_BSP_SCHEDULE_DELAY" in targets.warnings[0]
    assert bsp_milliseconds({"OTEL_BSP_EXPORT_TIMEOUT": "250"}, "OTEL_BSP_EXPORT_TIMEOUT") == (
        250,
        None,
    )


def test_malformed_resource_attributes_are_one_warning_and_the_rest_is_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`garbage` and `=x` are ignored, `team=ci` and OTEL_SERVICE_NAME reach the resource."""
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "garbage,,=x,team=ci")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "runner-7")
    resource = make_resource(build_info())
    assert resource.attributes["team"] == "ci"
    assert resource.attributes["service.name"] == "runner-7"
    assert "telemetry.sdk.name" in resource.attributes
    assert resource_warnings() == (
        "OTEL_RESOURCE_ATTRIBUTES: ignoring 'garbage', '=x': not key=value",
    )


def test_read_variables_are_hidden_from_the_sdk() -> None:
    """Once read, the variables leave the environment the SDK reads; others stay."""
    env = {
        "OTEL_RESOURCE_ATTRIBUTES": "a=b",
        "OTEL_EXPORTER_OTLP_HEADERS": "x=y",
        "OTEL_BSP_SCHEDULE_DELAY": "1",
        "OTEL_SERVICE_NAME": "s",
    }
    hide_from_sdk(env)
    assert env == {"OTEL_SERVICE_NAME": "s"}


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_any_text_parses_to_pairs_and_at_most_one_warning(text: str) -> None:
    """No value of a pair list raises; every pair kept has a non-empty key."""
    pairs, warning = parse_pairs("OTEL_RESOURCE_ATTRIBUTES", text)
    assert all(pairs)
    assert warning is None or "\n" not in warning.replace("\\n", "")


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "OTEL_EXPORTER_OTLP_PROTOCOL",
                "OTEL_METRICS_EXPORTER",
                "OTEL_TRACES_EXPORTER",
                "OTEL_METRIC_EXPORT_INTERVAL",
                "OTEL_EXPORTER_OTLP_HEADERS",
                "OTEL_PROPAGATORS",
                "OTEL_BSP_SCHEDULE_DELAY",
                "OTEL_SDK_DISABLED",
                "OTEL_EXPORTER_OTLP_COMPRESSION",
            ]
        ),
        st.text(max_size=30),
        max_size=5,
    )
)
def test_random_otel_variables_resolve_or_raise_config_error(env: dict[str, str]) -> None:
    """Whatever the OTEL_* variables hold, resolving gives targets or one ConfigError line."""
    try:
        resolve(OtlpConfig(), env)
    except ConfigError as exc:
        assert "\n" not in str(exc)
