"""Wait for a condition with a deadline instead of sleeping for a guessed time."""

from __future__ import annotations

import threading
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


def wait_notified(
    condition: threading.Condition,
    probe: Callable[[], T | None],
    timeout: float,
    what: Callable[[], str],
    error: type[AssertionError] = AssertionError,
    recheck: float = 0.2,
) -> T:
    """Holding `condition`, call `probe` on every notify until it returns a truthy value, and
    return that; after `timeout` seconds raise `error` naming `what()` was awaited.

    `probe` also runs every `recheck` seconds, for a change made without a notify. It
    and `what` run with `condition` held, so they may read the state it guards.
    """
    deadline = time.monotonic() + timeout
    with condition:
        while True:
            value = probe()
            if value:
                return value
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise error(f"waited {timeout}s for {what()}")
            condition.wait(min(remaining, recheck))
