"""`ci_runner_errors_total`: a logging handler counting warnings and errors as they are logged."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from alloy_runner.telemetry.catalog import instruments

if TYPE_CHECKING:
    from alloy_runner.telemetry.metrics.setup import Telemetry


class ErrorCounter(logging.Handler):
    """Count each record at WARNING or above under its `level`."""

    def __init__(self, telemetry: Telemetry) -> None:
        super().__init__(level=logging.WARNING)
        self._counter = telemetry.counter(instruments.ERRORS)
        self._busy = threading.local()
        for level in instruments.ErrorLevel:  # every level is visible from the first scrape
            self._counter.add(0, {"level": level.value})

    def emit(self, record: logging.LogRecord) -> None:
        # Counting can itself log (the SDK warns about bad values): never recurse.
        if getattr(self._busy, "active", False):
            return
        self._busy.active = True
        try:
            if record.levelno >= logging.CRITICAL:
                level = instruments.ErrorLevel.FATAL
            elif record.levelno >= logging.ERROR:
                level = instruments.ErrorLevel.ERROR
            else:
                level = instruments.ErrorLevel.WARNING
            self._counter.add(1, {"level": level.value})
        finally:
            self._busy.active = False
