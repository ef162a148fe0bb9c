"""ConfigTelemetry: the configuration load and save counters, under both namings."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

from alloy_runner.coordinator.gitlab.rotation import ConfigSaves
from alloy_runner.telemetry.catalog.naming import MetricNames
from alloy_runner.telemetry.metrics.config import ConfigTelemetry
from alloy_runner.telemetry.metrics.setup import Telemetry
from alloy_runner.version import build_info

FAMILIES = ("loaded", "loading_error", "saved", "saving_error")


@pytest.fixture
def both() -> Iterator[Telemetry]:
    """Return a Telemetry that exposes the ci_* and the gitlab_runner_* names."""
    telemetry = Telemetry(build_info(), registry=CollectorRegistry(), names=MetricNames.BOTH)
    try:
        yield telemetry
    finally:
        telemetry.shutdown(timeout=1.0)


def _values(telemetry: Telemetry) -> dict[str, float | None]:
    get = telemetry.registry.get_sample_value
    return {
        f"{prefix}:{what}": get(f"{prefix}_configuration_{what}_total")
        for prefix in ("ci_runner", "gitlab_runner")
        for what in FAMILIES
    }


def _expected(**values: float) -> dict[str, float | None]:
    return {
        f"{prefix}:{what}": values.get(what, 0.0)
        for prefix in ("ci_runner", "gitlab_runner")
        for what in FAMILIES
    }


def test_every_counter_is_at_zero_before_anything_is_counted(both: Telemetry) -> None:
    """A process without a config file shows all four families at 0, under both names."""
    ConfigTelemetry(both, loaded=False)
    assert _values(both) == _expected()


def test_saves_and_failed_saves_are_counted_apart_from_loads(both: Telemetry) -> None:
    """saved() and saving_failed() move their own counter only; the start's load counts 1."""
    metrics = ConfigTelemetry(both, loaded=True)
    saves: ConfigSaves = metrics  # the port token rotation reports to
    saves.saved()
    saves.saved()
    saves.saving_failed()
    assert _values(both) == _expected(loaded=1, saved=2, saving_error=1)
