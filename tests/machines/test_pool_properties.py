"""Properties of the machine pool over random sequences of builds, driver results and time."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from alloy_runner.machines.metrics import MachineEvent, MachineState
from alloy_runner.machines.pool import MachinePool
from tests.machines.support import Clock, make_pool
from tests.support.fakes import RecordingMetrics


class PoolModel(RuleBasedStateMachine):
    """Drive a pool as the provider and the builds would, and check it after every step."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock()
        self.metrics = RecordingMetrics()
        self.pool: MachinePool = make_pool()
        self.creating: set[str] = set()  # creations the driver is working on
        self.removing: set[str] = set()  # removals the driver is working on
        self.acquired: set[str] = set()
        self.used: set[str] = set()
        self.waiting = 0
        self.seen = dict.fromkeys(MachineEvent, 0)
        self.limit = self.idle_count = self.max_builds = 0
        self.idle_time = 0.0

    @initialize(
        limit=st.integers(0, 6),
        idle_count=st.integers(0, 4),
        idle_time=st.sampled_from([0.0, 1.0, 5.0]),
        max_builds=st.integers(0, 3),
    )
    def configure(self, limit: int, idle_count: int, idle_time: float, max_builds: int) -> None:
        self.limit, self.idle_count, self.idle_time = limit, idle_count, idle_time
        self.max_builds = max_builds
        self.pool = make_pool(
            limit=limit,
            idle_count=idle_count,
            idle_time=idle_time,
            max_builds=max_builds,
            clock=self.clock,
            metrics=self.metrics,
        )

    # --- steps ---------------------------------------------------------------------------

    @rule()
    def reconcile(self) -> None:
        plan = self.pool.plan()
        assert not set(plan.create) & self.creating, "a name was given twice"
        self.creating |= set(plan.create)
        self.removing |= set(plan.remove)
        self._check_idle_after_reconcile()

    @precondition(lambda self: self.creating)
    @rule(data=st.data(), ok=st.booleans(), leftover=st.booleans())
    def creation_ends(self, data: st.DataObject, ok: bool, leftover: bool) -> None:
        name = data.draw(st.sampled_from(sorted(self.creating)))
        self.creating.discard(name)
        if ok:
            self.pool.created(name)
        elif self.pool.creation_failed(name, leftover):
            self.removing.add(name)

    @precondition(lambda self: self.removing)
    @rule(data=st.data(), ok=st.booleans())
    def removal_ends(self, data: st.DataObject, ok: bool) -> None:
        name = data.draw(st.sampled_from(sorted(self.removing)))
        self.removing.discard(name)
        if ok:
            self.pool.removed(name)
        else:
            self.pool.removal_failed(name)

    @rule()
    def acquire(self) -> None:
        name = self.pool.acquire()
        if name is not None:
            self.acquired.add(name)

    @precondition(lambda self: self.acquired)
    @rule(data=st.data())
    def use(self, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(sorted(self.acquired)))
        self.acquired.discard(name)
        self.pool.use(name)
        self.used.add(name)

    @precondition(lambda self: self.used or self.acquired)
    @rule(data=st.data(), broken=st.booleans())
    def release(self, data: st.DataObject, broken: bool) -> None:
        name = data.draw(st.sampled_from(sorted(self.used | self.acquired)))
        self.used.discard(name)
        self.acquired.discard(name)
        if self.pool.release(name, broken):
            self.removing.add(name)

    @rule()
    def build_waits(self) -> None:
        self.pool.add_waiter()
        self.waiting += 1

    @precondition(lambda self: self.waiting)
    @rule()
    def build_stops_waiting(self) -> None:
        self.pool.remove_waiter()
        self.waiting -= 1

    @rule(seconds=st.sampled_from([0.1, 0.6, 1.5, 3.0, 10.0, 70.0]))
    def time_passes(self, seconds: float) -> None:
        self.clock.advance(seconds)

    # --- what must always hold -----------------------------------------------------------

    @invariant()
    def gauges_sum_to_the_pool_size(self) -> None:
        snapshot = self.pool.snapshot()
        assert set(snapshot) == set(MachineState)
        assert sum(snapshot.values()) == len(self.pool)
        actual: dict[MachineState, int] = dict.fromkeys(MachineState, 0)
        for machine in self.pool.machines():
            actual[machine.state] += 1
        assert snapshot == actual

    @invariant()
    def counters_never_fall(self) -> None:
        for event in MachineEvent:
            assert self.metrics.machine_events[event] >= self.seen[event]
            self.seen[event] = self.metrics.machine_events[event]

    @invariant()
    def created_minus_removed_is_what_exists(self) -> None:
        exists = sum(1 for m in self.pool.machines() if m.exists)
        events = self.metrics.machine_events
        assert events[MachineEvent.CREATED] - events[MachineEvent.REMOVED] == exists

    @invariant()
    def the_pool_never_exceeds_its_limit(self) -> None:
        if self.limit:
            assert len(self.pool) <= self.limit

    @invariant()
    def driver_work_matches_the_states(self) -> None:
        machines = {m.name: m for m in self.pool.machines()}
        assert {n for n, m in machines.items() if m.state is MachineState.CREATING} == (
            self.creating
        )
        busy_removing = {
            n for n, m in machines.items() if m.state is MachineState.REMOVING and m.busy
        }
        assert busy_removing == self.removing
        assert {n for n, m in machines.items() if m.state is MachineState.USED} == self.used

    def _check_idle_after_reconcile(self) -> None:
        counts = self.pool.snapshot()
        available = counts[MachineState.IDLE] + counts[MachineState.CREATING]
        at_limit = bool(self.limit) and len(self.pool) >= self.limit
        backing_off = self.pool.creation_blocked_until > self.clock()
        if not at_limit and not backing_off:
            # In-flight creations count, as in GitLab Runner's Available().
            assert available >= self.idle_count + self.waiting
        idle = sorted(
            (m for m in self.pool.machines() if m.state is MachineState.IDLE),
            key=lambda m: m.since,
            reverse=True,
        )
        for machine in idle[self.idle_count + self.waiting :]:
            assert self.clock() - machine.since <= self.idle_time, "an extra idle machine stayed"
        if self.max_builds:
            assert all(m.builds < self.max_builds for m in idle)


PoolModel.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
TestPoolProperties = PoolModel.TestCase
