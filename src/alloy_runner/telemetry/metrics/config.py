"""The configuration families: the file loaded (at start and at SIGHUP), or refused."""

from __future__ import annotations

from typing import TYPE_CHECKING

from alloy_runner.telemetry.catalog import instruments

if TYPE_CHECKING:
    from alloy_runner.telemetry.metrics.setup import Telemetry


class ConfigTelemetry:
    """Count the loads of config.toml; both counters exist at 0 from the start."""

    def __init__(self, telemetry: Telemetry, *, loaded: bool) -> None:
        self._loaded = telemetry.counter(instruments.CONFIG_LOADED)
        self._errors = telemetry.counter(instruments.CONFIG_LOADING_ERRORS)
        self._loaded.add(1 if loaded else 0)  # the file `run` started from, if any
        self._errors.add(0)

    def loaded(self) -> None:
        """A SIGHUP loaded the file."""
        self._loaded.add(1)

    def loading_failed(self) -> None:
        """A SIGHUP found the file broken; the running configuration stays."""
        self._errors.add(1)
