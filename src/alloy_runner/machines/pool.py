"""The pool of autoscaled machines: pure state transitions, GitLab Runner's semantics.

A machine is `creating` while its driver makes it, `idle` while it waits for
a build, `acquired` once a build took it, `used` while the build runs on it,
and `removing` while its driver removes it (for as long as removal fails).

The pool does no I/O: `plan()` says which machines to create and remove, and
the provider reports back how each driver call ended (`created`,
`creation_failed`, `removed`, `removal_failed`). Time comes from an injected
clock. Every method takes one lock, so that `snapshot()` can be read from the
metrics server's thread while the event loop changes the pool.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from alloy_runner.machines.metrics import MachineMetrics, MachineState, NoMachineMetrics

if TYPE_CHECKING:
    from alloy_runner.machines.schedule import IdlePolicy


@dataclass
class Machine:
    """One machine as the pool knows it."""

    name: str
    state: MachineState
    since: float  # when it entered its state (for an idle machine: when it was last used)
    started: float  # when its creation began, or when it was adopted
    builds: int = 0
    exists: bool = False  # created (or adopted): its removal counts as `removed`
    busy: bool = False  # a driver call for it is in flight
    retry_at: float = 0.0  # a failed removal is tried again from then on
    failures: int = 0  # failed removals in a row
    reason: str = ""  # why it is being removed


@dataclass(frozen=True)
class Plan:
    """What one reconcile asks the driver to do."""

    create: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()


@dataclass(frozen=True)
class PoolLimits:
    """The fixed bounds of a pool."""

    limit: int = 0  # machines at most, in any state; 0: no bound
    max_builds: int = 0  # builds on one machine before it is removed; 0: no bound
    backoff: float = 1.0  # seconds before the first retry after a failure; doubles each time
    max_backoff: float = 60.0


class MachinePool:
    """Keep IdleCount machines idle within `limit`; hand them to builds; retire them."""

    def __init__(
        self,
        limits: PoolLimits,
        *,
        policy: Callable[[], IdlePolicy],
        new_name: Callable[[], str],
        clock: Callable[[], float] = time.monotonic,
        metrics: MachineMetrics | None = None,
    ) -> None:
        self.limits = limits
        self._policy = policy
        self._new_name = new_name
        self._clock = clock
        self._metrics: MachineMetrics = metrics if metrics is not None else NoMachineMetrics()
        self._lock = threading.Lock()
        self._machines: dict[str, Machine] = {}
        self._counts = dict.fromkeys(MachineState, 0)
        self._waiting = 0
        self._failed_in_row = 0  # failed creations since the last success
        self._blocked_until = 0.0  # no creation before then (backoff after failures)
        self.creation_failures = 0  # every failed creation since the pool began

    # --- what others read --------------------------------------------------------------

    def snapshot(self) -> dict[MachineState, int]:
        """Return how many machines are in each state; every state is present."""
        with self._lock:
            return dict(self._counts)

    def __len__(self) -> int:
        with self._lock:
            return len(self._machines)

    def machines(self) -> list[Machine]:
        """Return a copy of every machine."""
        with self._lock:
            return [replace(m) for m in self._machines.values()]

    def state_of(self, name: str) -> MachineState | None:
        """Return the state of machine `name`, or None if the pool does not hold it."""
        with self._lock:
            machine = self._machines.get(name)
            return machine.state if machine is not None else None

    @property
    def creation_blocked_until(self) -> float:
        """Return the clock time before which no machine is created (the backoff of failures)."""
        with self._lock:
            return self._blocked_until

    def next_due(self) -> float | None:
        """Return the clock time when a backoff ends or a removal is due again, if any."""
        with self._lock:
            times = [
                m.retry_at
                for m in self._machines.values()
                if m.state is MachineState.REMOVING and not m.busy
            ]
            if self._blocked_until > self._clock():
                times.append(self._blocked_until)
            return min(times, default=None)

    # --- reconcile ---------------------------------------------------------------------

    def adopt(self, names: Iterable[str]) -> list[str]:
        """Take machines found at start (by name) as idle ones; return those newly taken.

        As GitLab Runner does, a found machine counts as used once: nothing
        tells whether a build ran on it, so MaxBuilds = 1 retires it.
        """
        now = self._clock()
        taken = []
        with self._lock:
            for name in names:
                if name not in self._machines:
                    self._add(Machine(name, MachineState.IDLE, now, now, builds=1, exists=True))
                    taken.append(name)
        return taken

    def plan(self) -> Plan:
        """Decide which machines to remove and create now; they are marked busy until reported."""
        policy = self._policy()
        limit, max_builds = self.limits.limit, self.limits.max_builds
        now = self._clock()
        remove: list[str] = []
        create: list[str] = []
        with self._lock:
            for m in self._machines.values():
                if m.state is MachineState.REMOVING and not m.busy and m.retry_at <= now:
                    m.busy = True
                    remove.append(m.name)
            live = len(self._machines) - self._counts[MachineState.REMOVING]
            idle = [m for m in self._machines.values() if m.state is MachineState.IDLE]
            idle.sort(key=lambda m: m.since, reverse=True)  # the most recently used are kept
            kept = 0
            keep = policy.idle_count + self._waiting  # a machine made for a waiting build stays
            for m in idle:
                if max_builds and m.builds >= max_builds:
                    reason = "too many builds"
                elif limit and live > limit:
                    reason = "too many machines"
                elif kept >= keep and now - m.since > policy.idle_time:
                    reason = "too many idle machines"
                else:
                    kept += 1
                    continue
                self._start_removal(m, reason, now)
                remove.append(m.name)
                live -= 1
            # In-flight creations count as available, so a slow driver is not asked twice.
            available = self._counts[MachineState.IDLE] + self._counts[MachineState.CREATING]
            total = len(self._machines)
            if now >= self._blocked_until:
                while available < policy.idle_count + self._waiting and (
                    not limit or total < limit
                ):
                    name = self._new_name()
                    if name in self._machines:
                        raise ValueError(f"new_name gave {name!r}, a name the pool holds")
                    self._add(Machine(name, MachineState.CREATING, now, now, busy=True))
                    create.append(name)
                    available += 1
                    total += 1
        return Plan(tuple(create), tuple(remove))

    # --- what the driver reports -------------------------------------------------------

    def created(self, name: str) -> None:
        """Machine `name` was created: it is idle now."""
        now = self._clock()
        with self._lock:
            m = self._machines[name]
            m.exists, m.busy = True, False
            self._move(m, MachineState.IDLE, now)
            self._failed_in_row, self._blocked_until = 0, 0.0
            seconds = now - m.started
        self._metrics.machine_created(seconds)

    def creation_failed(self, name: str, leftover: bool) -> bool:
        """Creating `name` failed; return True if what it left must be removed (it is removing)."""
        now = self._clock()
        with self._lock:
            m = self._machines[name]
            self._failed_in_row += 1
            self.creation_failures += 1
            self._blocked_until = now + self._backoff(self._failed_in_row)
            seconds = now - m.started
            if leftover:
                m.busy = True
                m.reason = "failed to create"
                self._move(m, MachineState.REMOVING, now)
            else:
                self._drop(m)
        self._metrics.creation_failed(seconds)
        return leftover

    def removed(self, name: str, seconds: float | None = None) -> None:
        """Machine `name` is gone; removing it took `seconds` (the driver's call)."""
        with self._lock:
            m = self._machines[name]
            self._drop(m)
        if m.exists:
            self._metrics.machine_removed(seconds)

    def stopped(self, seconds: float) -> None:
        """A machine was stopped, before its removal, in `seconds`."""
        self._metrics.machine_stopped(seconds)

    def removal_failed(self, name: str) -> None:
        """Removing `name` failed: it stays `removing`, and is tried again after a backoff."""
        now = self._clock()
        with self._lock:
            m = self._machines[name]
            m.busy = False
            m.failures += 1
            m.retry_at = now + self._backoff(m.failures)

    # --- builds ------------------------------------------------------------------------

    def add_waiter(self) -> None:
        """A build waits for a machine: the next plan creates one more if the limit allows."""
        with self._lock:
            self._waiting += 1

    def remove_waiter(self) -> None:
        """A build stopped waiting (it got a machine, or gave up)."""
        with self._lock:
            self._waiting -= 1

    def acquire(self) -> str | None:
        """Take the most recently used idle machine for a build, or return None if none is idle."""
        now = self._clock()
        with self._lock:
            best: Machine | None = None
            for m in self._machines.values():
                if m.state is MachineState.IDLE and (best is None or m.since > best.since):
                    best = m
            if best is None:
                return None
            self._move(best, MachineState.ACQUIRED, now)
            return best.name

    def use(self, name: str) -> None:
        """The build that acquired `name` runs on it now."""
        now = self._clock()
        with self._lock:
            m = self._machines[name]
            m.builds += 1
            self._move(m, MachineState.USED, now)
        self._metrics.machine_used()

    def release(self, name: str, broken: bool = False) -> bool:
        """The build on `name` is over; return True if the machine must be removed (MaxBuilds).

        A `broken` machine (one the build could not use) is removed too.
        """
        now = self._clock()
        max_builds = self.limits.max_builds
        with self._lock:
            m = self._machines.get(name)
            if m is None or m.state not in (MachineState.ACQUIRED, MachineState.USED):
                return False
            if broken or (max_builds and m.builds >= max_builds):
                m.busy = True
                self._start_removal(m, "broken" if broken else "too many builds", now)
                return True
            self._move(m, MachineState.IDLE, now)
            return False

    # --- inside the lock ---------------------------------------------------------------

    def _backoff(self, failures: int) -> float:
        return float(min(self.limits.max_backoff, self.limits.backoff * 2 ** min(failures - 1, 30)))

    def _add(self, m: Machine) -> None:
        self._machines[m.name] = m
        self._counts[m.state] += 1

    def _drop(self, m: Machine) -> None:
        del self._machines[m.name]
        self._counts[m.state] -= 1

    def _move(self, m: Machine, state: MachineState, now: float) -> None:
        self._counts[m.state] -= 1
        self._counts[state] += 1
        m.state = state
        m.since = now

    def _start_removal(self, m: Machine, reason: str, now: float) -> None:
        m.busy = True
        m.reason = reason
        m.failures = 0
        self._move(m, MachineState.REMOVING, now)
