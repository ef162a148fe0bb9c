"""The coordinator API families: every call counted by status and timed, when it ends.

The expected statuses and the retried calls exist at 0 from the start.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from alloy_runner.coordinator.api_metrics import (
    Endpoint,
    TransportFailure,
    expected_statuses,
    status_label,
)
from alloy_runner.telemetry.catalog import instruments
from alloy_runner.telemetry.catalog.naming import status_class

if TYPE_CHECKING:
    from alloy_runner.telemetry.metrics.setup import Telemetry


RETRIED = (Endpoint.UPDATE_JOB, Endpoint.UPLOAD_ARTIFACTS, Endpoint.DOWNLOAD_ARTIFACTS)


class ApiTelemetry:
    """The telemetry side of `ApiMetrics`."""

    def __init__(self, telemetry: Telemetry, runners: Sequence[str] = ()) -> None:
        self._statuses = telemetry.counter(instruments.API_REQUEST_STATUSES)
        self._duration = telemetry.histogram(instruments.API_REQUEST_DURATION)
        self._retries = telemetry.counter(instruments.API_REQUEST_RETRIES)
        # The calls that are retried, and the statuses the calls of `run` can answer
        # (EXPECTED_STATUSES), exist at 0 for each runner with a coordinator.
        for runner in runners:
            for endpoint in RETRIED:
                self._retries.add(0, {"runner": runner, "endpoint": endpoint.value})
            for endpoint, status in expected_statuses():
                attributes = {"runner": runner, "endpoint": endpoint.value, "status": status}
                self._statuses.add(0, attributes)

    def request_retried(self, runner: str, endpoint: Endpoint) -> None:
        self._retries.add(1, {"runner": runner, "endpoint": endpoint.value})

    def request_done(
        self, runner: str, endpoint: Endpoint, status: int | TransportFailure, seconds: float
    ) -> None:
        self._statuses.add(
            1, {"runner": runner, "endpoint": endpoint.value, "status": status_label(status)}
        )
        # status_class is for the GitLab naming; the ci_* family sums it away.
        label = status_label(status)
        self._duration.record(
            seconds,
            {"runner": runner, "endpoint": endpoint.value, "status_class": status_class(label)},
        )
