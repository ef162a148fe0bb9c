"""The provider: its background loop, its bounded driver calls, and machines handed to builds."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable

import pytest

from alloy_runner.exceptions import MachineUnavailable
from alloy_runner.machines.drivers.memory import MemoryDriver
from alloy_runner.machines.metrics import MachineEvent, MachineState
from alloy_runner.machines.pool import MachinePool, PoolLimits
from alloy_runner.machines.provider import MachineProvider
from alloy_runner.machines.schedule import IdlePolicy
from tests.machines.support import make_pool
from tests.support.fakes import RecordingMetrics

ANY = re.compile(r"m[0-9]+")


async def _until(probe: Callable[[], object], timeout: float = 5.0) -> None:
    """Wait on the loop until `probe()` is true."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not probe():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def count_rounds(provider: MachineProvider) -> list[int]:
    """Count the provider's reconcile rounds; return the one-item list holding the count."""
    rounds = [0]
    reconcile = provider.reconcile

    def counted() -> None:
        rounds[0] += 1
        reconcile()

    provider.reconcile = counted  # type: ignore[method-assign]
    return rounds


class SlowDriver(MemoryDriver):
    """A memory driver that records how many calls run at once."""

    def __init__(self, delay: float) -> None:
        super().__init__(delay)
        self.running = 0
        self.most = 0

    async def create(self, name: str) -> None:
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            await super().create(name)
        finally:
            self.running -= 1


def test_driver_calls_run_concurrently_within_the_bound() -> None:
    """Twenty creations run in parallel, never more than `parallelism` at once."""

    async def scenario() -> int:
        driver = SlowDriver(delay=0.05)
        pool = make_pool(idle_count=20)
        provider = MachineProvider(pool, driver, name_filter=ANY, parallelism=4)
        await provider.start()
        await _until(lambda: pool.snapshot()[MachineState.IDLE] == 20)
        await provider.shutdown(1.0)
        return driver.most

    assert asyncio.run(scenario()) == 4


def test_loop_survives_a_failing_iteration() -> None:
    """An iteration that raises is logged and counted; the next one does the work."""
    failures = [RuntimeError("policy store unreachable")]

    def policy() -> IdlePolicy:
        if failures:
            raise failures.pop()
        return IdlePolicy(1, 0)

    async def scenario() -> tuple[int, int]:
        pool = MachinePool(PoolLimits(), policy=policy, new_name=lambda: "m1")
        provider = MachineProvider(pool, MemoryDriver(), name_filter=ANY, interval=0.05)
        await provider.start()
        await _until(lambda: pool.snapshot()[MachineState.IDLE] == 1)
        await provider.shutdown(1.0)
        return provider.failed_iterations, len(pool)

    assert asyncio.run(scenario()) == (1, 1)


def test_start_adopts_this_runners_machines_only() -> None:
    """At start, the driver's machines that match the name pattern are adopted, others left."""

    async def scenario() -> tuple[list[str], set[str]]:
        driver = MemoryDriver()
        driver.machines = {"m7", "m8", "other-runner-1"}
        pool = make_pool(idle_count=2)
        provider = MachineProvider(pool, driver, name_filter=ANY, interval=0.01)
        rounds = count_rounds(provider)
        await provider.start()
        await _until(lambda: rounds[0] >= 3)  # three rounds that could have created or removed
        await provider.shutdown(1.0)
        return sorted(m.name for m in pool.machines()), driver.machines

    names, left = asyncio.run(scenario())
    assert names == ["m7", "m8"]
    assert left == {"m7", "m8", "other-runner-1"}, "nothing was created or removed"


def test_acquire_waits_for_a_creation() -> None:
    """With IdleCount = 0, a build waits while a machine is created for it, then gets it."""

    async def scenario() -> tuple[str, MachineState | None]:
        pool = make_pool(idle_count=0)
        provider = MachineProvider(pool, MemoryDriver(delay=0.1), name_filter=ANY)
        await provider.start()
        name = await provider.acquire()
        state = pool.state_of(name)
        await provider.shutdown(1.0)
        return name, state

    assert asyncio.run(scenario()) == ("m1", MachineState.ACQUIRED)


def test_acquire_fails_clearly_when_creation_keeps_failing() -> None:
    """A waiting build fails after `attempts` failed creations, with the driver's reason."""
    metrics = RecordingMetrics()

    async def scenario() -> str:
        driver = MemoryDriver()
        driver.fail_create = True
        pool = MachinePool(
            PoolLimits(backoff=0.01, max_backoff=0.02),
            policy=lambda: IdlePolicy(0, 0),
            new_name=iter(f"m{i}" for i in range(100)).__next__,
            metrics=metrics,
        )
        provider = MachineProvider(pool, driver, name_filter=ANY, attempts=3, interval=0.05)
        await provider.start()
        try:
            with pytest.raises(MachineUnavailable) as caught:
                await provider.acquire()
        finally:
            await provider.shutdown(1.0)
        return str(caught.value)

    message = asyncio.run(scenario())
    assert "no machine could be created (3 attempts failed" in message
    assert "creating m2 failed (as asked)" in message
    assert metrics.machine_events[MachineEvent.CREATION_FAILED] >= 3


def test_acquire_gives_up_after_its_timeout() -> None:
    """When the limit leaves no room for a machine, a build waits `acquire_timeout`, then fails."""

    async def scenario() -> str:
        pool = make_pool(limit=1, idle_count=1)
        provider = MachineProvider(pool, MemoryDriver(), name_filter=ANY, acquire_timeout=0.2)
        await provider.start()
        first = await provider.acquire()
        provider.use(first)
        try:
            with pytest.raises(MachineUnavailable) as caught:
                await provider.acquire()
        finally:
            await provider.shutdown(1.0)
        return str(caught.value)

    assert "no machine became available within 0.2s" in asyncio.run(scenario())


def test_failed_removal_is_retried_until_it_succeeds() -> None:
    """A machine whose removal fails stays `removing` and is removed once the driver lets it."""

    async def scenario() -> None:
        driver = MemoryDriver()
        pool = MachinePool(
            PoolLimits(max_builds=1, backoff=0.05, max_backoff=0.1),
            policy=lambda: IdlePolicy(0, 0),
            new_name=iter(f"m{i}" for i in range(100)).__next__,
        )
        provider = MachineProvider(pool, driver, name_filter=ANY, interval=0.05)
        await provider.start()
        name = await provider.acquire()
        provider.use(name)
        driver.fail_remove = True
        provider.release(name)
        await _until(lambda: sum(1 for c in driver.calls if c[0] == "remove") >= 2)
        assert pool.state_of(name) is MachineState.REMOVING
        driver.fail_remove = False
        await _until(lambda: pool.state_of(name) is None)
        await provider.shutdown(1.0)
        assert driver.machines == set()

    asyncio.run(scenario())
