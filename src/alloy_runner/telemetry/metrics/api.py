"""The coordinator API families: every call counted by status and timed, when it ends."""

from __future__ import annotations

from typing import TYPE_CHECKING

from alloy_runner.coordinator.api_metrics import Endpoint, TransportFailure, status_label
from alloy_runner.telemetry.catalog import instruments

if TYPE_CHECKING:
    from alloy_runner.telemetry.metrics.setup import Telemetry


class ApiTelemetry:
    """The telemetry side of `ApiMetrics`."""

    def __init__(self, telemetry: Telemetry) -> None:
        self._statuses = telemetry.counter(instruments.API_REQUEST_STATUSES)
        self._duration = telemetry.histogram(instruments.API_REQUEST_DURATION)

    def request_done(
        self, runner: str, endpoint: Endpoint, status: int | TransportFailure, seconds: float
    ) -> None:
        self._statuses.add(
            1, {"runner": runner, "endpoint": endpoint.value, "status": status_label(status)}
        )
        self._duration.record(seconds, {"runner": runner, "endpoint": endpoint.value})
