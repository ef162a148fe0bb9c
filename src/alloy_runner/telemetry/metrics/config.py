"""The configuration families: the file loaded (at start and at SIGHUP) or refused, saved or not.

`run` saves config.toml when it rotates a runner's token (coordinator/gitlab/rotation.py);
this class is the `ConfigSaves` that rotation reports to.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from alloy_runner.telemetry.catalog import instruments

if TYPE_CHECKING:
    from alloy_runner.telemetry.metrics.setup import Telemetry


class ConfigTelemetry:
    """Count the loads and saves of config.toml; all four counters exist at 0 from the start."""

    def __init__(self, telemetry: Telemetry, *, loaded: bool) -> None:
        self._loaded = telemetry.counter(instruments.CONFIG_LOADED)
        self._errors = telemetry.counter(instruments.CONFIG_LOADING_ERRORS)
        self._saved = telemetry.counter(instruments.CONFIG_SAVED)
        self._saving_errors = telemetry.counter(instruments.CONFIG_SAVING_ERRORS)
        self._loaded.add(1 if loaded else 0)  # the file `run` started from, if any
        self._errors.add(0)
        self._saved.add(0)
        self._saving_errors.add(0)

    def loaded(self) -> None:
        """A SIGHUP loaded the file."""
        self._loaded.add(1)

    def loading_failed(self) -> None:
        """A SIGHUP found the file broken; the running configuration stays."""
        self._errors.add(1)

    def saved(self) -> None:
        """The process wrote the file (a rotated runner token)."""
        self._saved.add(1)

    def saving_failed(self) -> None:
        """The process could not write the file; what it runs with stays in memory."""
        self._saving_errors.add(1)
