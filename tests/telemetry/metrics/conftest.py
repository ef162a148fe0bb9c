"""A Telemetry on a fresh CollectorRegistry per test, read back as a scrape would."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

from alloy_runner.telemetry.metrics.setup import Telemetry
from alloy_runner.version import build_info


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    """Return a Telemetry writing into its own registry (`telemetry.registry`); shut at teardown."""
    the_telemetry = Telemetry(build_info(), registry=CollectorRegistry())
    try:
        yield the_telemetry
    finally:
        the_telemetry.shutdown(timeout=1.0)
