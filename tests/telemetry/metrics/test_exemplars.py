"""OTEL_METRICS_EXEMPLAR_FILTER reaches the MeterProvider that feeds /metrics and OTLP."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import use_span

from alloy_runner.telemetry.catalog import instruments
from alloy_runner.telemetry.metrics.setup import Telemetry
from alloy_runner.version import build_info


@pytest.mark.parametrize(("name", "expected"), [("always_off", 0), ("trace_based", 1)])
def test_a_histogram_observed_in_a_span_has_an_exemplar_by_the_filter(
    name: str, expected: int
) -> None:
    """trace_based: an observation made inside a sampled span carries it; always_off: none."""
    reader = InMemoryMetricReader()
    telemetry = Telemetry(build_info(), extra_readers=(reader,), exemplar_filter=name)
    histogram = telemetry.histogram(instruments.JOB_DURATION)
    span = TracerProvider(shutdown_on_exit=False).get_tracer("t").start_span("job")
    with use_span(span, end_on_exit=True):
        histogram.record(1.5, {"runner": "r"})
    data = reader.get_metrics_data()
    assert data is not None
    (point,) = [
        p
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == instruments.JOB_DURATION.name
        for p in m.data.data_points
    ]
    assert len(point.exemplars) == expected
    if expected:
        assert point.exemplars[0].span_id == span.get_span_context().span_id
    telemetry.shutdown(timeout=1.0)
