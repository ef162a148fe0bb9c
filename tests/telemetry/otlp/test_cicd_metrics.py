"""cicd.system.errors counts the runner's logged errors by the part that logged them."""

from __future__ import annotations

import logging

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, NumberDataPoint

from alloy_runner.telemetry.otlp.cicd_metrics import CicdMetrics, SystemErrors


def test_a_logged_error_is_a_system_error_of_its_component() -> None:
    """An ERROR from alloy_runner.coordinator... with an exception counts under its class."""
    reader = InMemoryMetricReader()
    metrics = CicdMetrics(MeterProvider(metric_readers=[reader]), "test")
    handler = SystemErrors(metrics)
    logger = logging.getLogger("alloy_runner.coordinator.gitlab.api")
    logger.addHandler(handler)
    try:
        try:
            raise ConnectionError("down")
        except ConnectionError:
            logger.exception("request failed")
        logger.error("plain")
        logger.warning("not an error")
    finally:
        logger.removeHandler(handler)
    data = reader.get_metrics_data()
    assert data is not None
    counts = {
        tuple(sorted((p.attributes or {}).items())): p.value
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == "cicd.system.errors"
        for p in m.data.data_points
        if isinstance(p, NumberDataPoint)
    }
    assert counts == {
        (("cicd.system.component", "coordinator"), ("error.type", "ConnectionError")): 1,
        (("cicd.system.component", "coordinator"), ("error.type", "_OTHER")): 1,
    }
