"""The machine pool's rules one at a time: GitLab Runner's IdleCount, IdleTime, MaxBuilds, limit."""

from __future__ import annotations

from alloy_runner.machines.metrics import MachineEvent, MachineState
from alloy_runner.machines.pool import MachinePool
from tests.machines.support import Clock, make_pool
from tests.support.fakes import RecordingMetrics


def _create_all(pool: MachinePool) -> list[str]:
    """Reconcile once and report every creation it asked for as done."""
    plan = pool.plan()
    for name in plan.create:
        pool.created(name)
    return list(plan.create)


def test_idle_count_machines_are_created() -> None:
    """A reconcile asks for IdleCount machines; they are `creating`, then `idle` once created."""
    pool = make_pool(idle_count=2)
    plan = pool.plan()
    assert plan.create == ("m1", "m2")
    assert pool.snapshot()[MachineState.CREATING] == 2
    assert pool.plan().create == (), "in-flight creations count as available"
    for name in plan.create:
        pool.created(name)
    assert pool.snapshot()[MachineState.IDLE] == 2


def test_limit_caps_creation() -> None:
    """No reconcile takes the pool past the runner's limit, whatever IdleCount asks."""
    pool = make_pool(idle_count=5, limit=3)
    assert len(pool.plan().create) == 3
    assert pool.plan().create == ()


def test_a_build_takes_the_most_recently_used_idle_machine() -> None:
    """acquire() takes the newest idle machine, so older ones age out after IdleTime."""
    clock = Clock()
    pool = make_pool(idle_count=2, clock=clock)
    first, second = pool.plan().create
    pool.created(first)
    clock.advance(1)
    pool.created(second)
    assert pool.acquire() == second
    assert pool.state_of(second) is MachineState.ACQUIRED


def test_machine_moves_through_used_and_back_to_idle() -> None:
    """acquire, use, release: acquired, used (counted), then idle again."""
    metrics = RecordingMetrics()
    pool = make_pool(idle_count=1, metrics=metrics)
    (name,) = _create_all(pool)
    assert pool.acquire() == name
    pool.use(name)
    assert pool.state_of(name) is MachineState.USED
    assert metrics.machine_events[MachineEvent.USED] == 1
    assert pool.release(name) is False
    assert pool.state_of(name) is MachineState.IDLE


def test_max_builds_removes_the_machine_at_release() -> None:
    """With MaxBuilds = 1, a machine is removed once its build is over."""
    metrics = RecordingMetrics()
    pool = make_pool(idle_count=1, max_builds=1, metrics=metrics)
    (name,) = _create_all(pool)
    assert pool.acquire() == name
    pool.use(name)
    assert pool.release(name) is True
    assert pool.state_of(name) is MachineState.REMOVING
    pool.removed(name)
    assert pool.state_of(name) is None
    assert metrics.machine_events[MachineEvent.REMOVED] == 1


def test_extra_idle_machines_go_after_idle_time() -> None:
    """Idle machines beyond IdleCount go once idle longer than IdleTime, the oldest first."""
    clock = Clock()
    pool = make_pool(idle_count=1, idle_time=10, clock=clock)
    (a,) = _create_all(pool)
    assert pool.acquire() == a
    (b,) = _create_all(pool)  # a build holds a: one more is created to keep one idle
    pool.use(a)
    pool.release(a)  # now two are idle
    clock.advance(5)
    assert pool.plan().remove == ()
    clock.advance(6)
    assert pool.plan().remove == (b,), "the least recently used goes"
    assert pool.state_of(a) is MachineState.IDLE


def test_failed_creation_is_counted_and_backs_off() -> None:
    """A failed creation counts creation_failed; the next attempt waits for a doubling backoff."""
    clock = Clock()
    metrics = RecordingMetrics()
    pool = make_pool(idle_count=1, clock=clock, metrics=metrics)
    (name,) = pool.plan().create
    assert pool.creation_failed(name, leftover=False) is False
    assert pool.state_of(name) is None
    assert metrics.machine_events[MachineEvent.CREATION_FAILED] == 1
    assert pool.plan().create == ()
    clock.advance(1.0)
    (again,) = pool.plan().create
    pool.creation_failed(again, leftover=False)
    clock.advance(1.0)
    assert pool.plan().create == (), "the second backoff is two seconds"
    clock.advance(1.0)
    (third,) = pool.plan().create
    pool.created(third)
    assert pool.creation_blocked_until == 0.0, "a success ends the backoff"


def test_failed_creation_leftover_is_removed_without_counting_removed() -> None:
    """What a failed creation left is removed (visible as removing); it was never `created`."""
    metrics = RecordingMetrics()
    pool = make_pool(idle_count=1, metrics=metrics)
    (name,) = pool.plan().create
    assert pool.creation_failed(name, leftover=True) is True
    assert pool.state_of(name) is MachineState.REMOVING
    pool.removed(name)
    assert metrics.machine_events[MachineEvent.REMOVED] == 0


def test_failed_removal_stays_visible_and_is_retried() -> None:
    """A machine whose removal fails stays `removing` and is planned for removal again later."""
    clock = Clock()
    pool = make_pool(max_builds=1, idle_count=0, clock=clock)
    pool.add_waiter()
    (name,) = _create_all(pool)
    pool.remove_waiter()
    pool.acquire()
    pool.use(name)
    assert pool.release(name)
    pool.removal_failed(name)
    assert pool.snapshot()[MachineState.REMOVING] == 1
    assert pool.plan().remove == ()
    assert pool.next_due() == clock() + 1.0
    clock.advance(1.0)
    assert pool.plan().remove == (name,)
    pool.removed(name)
    assert pool.snapshot()[MachineState.REMOVING] == 0


def test_adopted_machines_are_idle_and_count_as_used_once() -> None:
    """Machines found at start are adopted as idle, once each, and satisfy IdleCount."""
    pool = make_pool(idle_count=2, max_builds=2)
    assert pool.adopt(["x1", "x2"]) == ["x1", "x2"]
    assert pool.adopt(["x1"]) == []
    assert pool.plan() == type(pool.plan())()
    assert {m.builds for m in pool.machines()} == {1}


def test_a_waiting_build_asks_for_one_more_machine() -> None:
    """With IdleCount = 0, a build waiting for a machine makes the next reconcile create one."""
    pool = make_pool(idle_count=0)
    assert pool.plan().create == ()
    pool.add_waiter()
    assert len(pool.plan().create) == 1


def test_snapshot_is_safe_from_another_thread() -> None:
    """snapshot() from another thread while the pool changes always sums to a consistent size."""
    import threading

    pool = make_pool(idle_count=50)
    stop = threading.Event()
    bad: list[dict[MachineState, int]] = []

    def scrape() -> None:
        while not stop.is_set():
            snap = pool.snapshot()
            if any(v < 0 for v in snap.values()):
                bad.append(snap)

    reader = threading.Thread(target=scrape)
    reader.start()
    try:
        for _ in range(20):
            for name in pool.plan().create:
                pool.created(name)
            while (taken := pool.acquire()) is not None:
                pool.use(taken)
                pool.release(taken, broken=True)
                pool.removed(taken)
    finally:
        stop.set()
        reader.join()
    assert bad == []
