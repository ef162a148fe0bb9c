"""Helpers of the machine tests: a clock to move by hand, metrics that count, a pool to drive."""

from __future__ import annotations

import itertools
from collections import Counter

from alloy_runner.machines.metrics import MachineEvent
from alloy_runner.machines.pool import MachinePool, PoolLimits
from alloy_runner.machines.schedule import IdlePolicy


class Clock:
    """A clock that moves only when told."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class CountingMetrics:
    """MachineMetrics that counts each event and keeps every creation duration."""

    def __init__(self) -> None:
        self.events: Counter[MachineEvent] = Counter()
        self.durations: list[float] = []

    def machine_created(self, seconds: float) -> None:
        self.events[MachineEvent.CREATED] += 1
        self.durations.append(seconds)

    def machine_removed(self) -> None:
        self.events[MachineEvent.REMOVED] += 1

    def machine_used(self) -> None:
        self.events[MachineEvent.USED] += 1

    def creation_failed(self) -> None:
        self.events[MachineEvent.CREATION_FAILED] += 1


def make_pool(
    *,
    limit: int = 0,
    idle_count: int = 0,
    idle_time: float = 0.0,
    max_builds: int = 0,
    clock: Clock | None = None,
    metrics: CountingMetrics | None = None,
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
