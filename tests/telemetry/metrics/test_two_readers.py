"""One MeterProvider with two readers (the scrape and OTLP): nothing is recorded twice."""

from __future__ import annotations

import threading

from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricsData
from prometheus_client import CollectorRegistry

from alloy_runner.telemetry.catalog import instruments
from alloy_runner.telemetry.metrics.runtime import install_runtime
from alloy_runner.telemetry.metrics.setup import Telemetry
from alloy_runner.version import build_info

GENERATION = {"generation": "2"}


def otlp_gc_count(data: MetricsData | None) -> int:
    assert data is not None
    total = 0
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name != instruments.GC_DURATION.name:
                    continue
                for point in metric.data.data_points:
                    if dict(point.attributes or {}) == GENERATION:
                        total += point.count  # type: ignore[union-attr]
    return total


def test_a_timed_collection_is_recorded_once_for_each_reader() -> None:
    """GC durations flushed by whichever reader collects first reach both, once each."""
    otlp = InMemoryMetricReader()
    registry = CollectorRegistry()
    telemetry = Telemetry(build_info(), registry=registry, extra_readers=[otlp])
    timer = install_runtime(telemetry)
    timer.uninstall()  # only the collections simulated below are timed
    try:
        for _ in range(30):
            for _ in range(3):
                timer("start", GENERATION)
                timer("stop", {"generation": 2})
            # The scrape and the export collect on threads of their own, sometimes at once.
            threads = [
                threading.Thread(target=lambda: list(registry.collect())),
                threading.Thread(target=otlp.get_metrics_data),
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        scraped = registry.get_sample_value("python_gc_duration_seconds_count", GENERATION)
        pushed = otlp_gc_count(otlp.get_metrics_data())
    finally:
        telemetry.shutdown(timeout=1.0)
    assert scraped == 90
    assert pushed == 90
