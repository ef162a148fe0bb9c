"""Helpers of the machine tests: a clock to move by hand and a pool to drive."""

from __future__ import annotations

import itertools

from alloy_runner.machines.pool import MachinePool, PoolLimits
from alloy_runner.machines.schedule import IdlePolicy
from tests.support.fakes import RecordingMetrics


class Clock:
    """A clock that moves only when told."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_pool(
    *,
    limit: int = 0,
    idle_count: int = 0,
    idle_time: float = 0.0,
    max_builds: int = 0,
    clock: Clock | None = None,
    metrics: RecordingMetrics | None = None,
) -> MachinePool:
    """Return a pool with names m1, m2, ... and a fixed idle policy."""
    counter = itertools.count(1)
    return MachinePool(
        PoolLimits(limit=limit, max_builds=max_builds),
        policy=lambda: IdlePolicy(idle_count, idle_time),
        new_name=lambda: f"m{next(counter)}",
        clock=clock if clock is not None else Clock(),
        metrics=metrics,
    )
