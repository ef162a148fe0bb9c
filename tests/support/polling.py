"""Wait for a condition with a deadline instead of sleeping for a guessed time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    probe: Callable[[], T | None], timeout: float, interval: float = 0.1, what: str = "condition"
) -> T:
    """Call `probe` until it returns a truthy value and return it; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} not met within {timeout}s (last value: {value!r})")
        time.sleep(interval)
