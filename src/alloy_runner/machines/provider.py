"""The provider: a pool's reconcile loop, its driver calls, and machines handed to builds."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Coroutine
from typing import Any

from alloy_runner.exceptions import MachineUnavailable
from alloy_runner.machines.driver import MachineDriver
from alloy_runner.machines.pool import MachinePool

log = logging.getLogger(__name__)

PARALLELISM = 8  # driver calls in flight at once, per provider
INTERVAL = 1.0  # seconds between reconciles when nothing wakes the loop earlier
ACQUIRE_TIMEOUT = 900.0  # seconds a build waits for a machine at most
ATTEMPTS = 3  # failed creations a waiting build sits through before it fails


class MachineProvider:
    """Reconcile `pool` in the background and carry out its plans with `driver`.

    The loop logs, counts (`failed_iterations`) and survives an iteration
    that fails. Driver calls run as tasks, at most `parallelism` at once.
    """

    def __init__(
        self,
        pool: MachinePool,
        driver: MachineDriver,
        *,
        name_filter: re.Pattern[str],
        parallelism: int = PARALLELISM,
        interval: float = INTERVAL,
        acquire_timeout: float = ACQUIRE_TIMEOUT,
        attempts: int = ATTEMPTS,
        clock: Callable[[], float] = time.monotonic,
        label: str = "machines",
    ) -> None:
        self.pool = pool
        self.driver = driver
        self.name_filter = name_filter
        self.interval = interval
        self.acquire_timeout = acquire_timeout
        self.attempts = attempts
        self.label = label
        self._clock = clock
        self._slots = asyncio.Semaphore(parallelism)
        self._wake = asyncio.Event()
        self._changed = asyncio.Event()
        self._ops: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._adopted = False
        self.failed_iterations = 0
        self.last_error = ""

    # --- the loop ----------------------------------------------------------------------

    async def start(self) -> None:
        """Adopt this runner's existing machines, then start reconciling in the background."""
        await self._adopt()
        self._loop_task = asyncio.create_task(self._loop(), name=f"reconcile-{self.label}")

    async def _adopt(self) -> None:
        try:
            names = await self.driver.list()
        except Exception as exc:
            log.error("%s: cannot list existing machines (will try again): %s", self.label, exc)
            return
        self._adopted = True
        found = self.pool.adopt(n for n in names if self.name_filter.fullmatch(n))
        if found:
            log.info("%s: adopted %d existing machine(s): %s", self.label, len(found), found)

    async def _loop(self) -> None:
        while True:
            try:
                if not self._adopted:
                    await self._adopt()
                self.reconcile()
            except Exception:
                self.failed_iterations += 1
                log.error("%s: reconcile failed; trying again", self.label, exc_info=True)
            timeout = self.interval
            if (due := self.pool.next_due()) is not None:
                timeout = min(timeout, max(0.01, due - self._clock()))
            await _wait_event(self._wake, timeout)
            self._wake.clear()

    def reconcile(self) -> None:
        """Plan once and start the driver calls the plan asks for."""
        plan = self.pool.plan()
        for name in plan.create:
            self._spawn(self._create(name))
        for name in plan.remove:
            self._spawn(self._remove(name))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._ops.add(task)
        task.add_done_callback(self._ops.discard)

    def _notify(self) -> None:
        """Wake the loop and every build waiting for a machine."""
        self._wake.set()
        self._changed.set()
        self._changed = asyncio.Event()

    async def _create(self, name: str) -> None:
        async with self._slots:
            try:
                await self.driver.create(name)
            except Exception as exc:
                self.last_error = str(exc)
                log.error("%s: machine %s: creation failed: %s", self.label, name, exc)
                leftover = await self._exists(name)
                if self.pool.creation_failed(name, leftover):
                    self._spawn(self._remove(name))
            else:
                self.pool.created(name)
                log.info("%s: machine %s created", self.label, name)
            finally:
                self._notify()

    async def _exists(self, name: str) -> bool:
        try:
            return await self.driver.exists(name)
        except Exception as exc:
            log.warning("%s: machine %s: cannot tell whether it exists: %s", self.label, name, exc)
            return True  # removal of a machine that is not there succeeds

    async def _remove(self, name: str) -> None:
        async with self._slots:
            began = self._clock()
            try:
                await self.driver.stop(name)
            except Exception as exc:  # a machine that would not stop is removed all the same
                log.info("%s: machine %s: stopping failed: %s", self.label, name, exc)
            else:
                self.pool.stopped(self._clock() - began)
            began = self._clock()
            try:
                await self.driver.remove(name)
            except Exception as exc:
                self.pool.removal_failed(name)
                log.warning("%s: machine %s: removal failed, will retry: %s", self.label, name, exc)
            else:
                self.pool.removed(name, self._clock() - began)
                log.info("%s: machine %s removed", self.label, name)
            finally:
                self._notify()

    # --- builds ------------------------------------------------------------------------

    async def acquire(self) -> str:
        """Return a machine for a build, waiting while one is created; raise MachineUnavailable.

        A build gives up after `attempts` failed creations while it waited, or
        after `acquire_timeout` seconds.
        """
        failures_before = self.pool.creation_failures
        deadline = self._clock() + self.acquire_timeout
        self.pool.add_waiter()
        try:
            while True:
                name = self.pool.acquire()
                if name is not None:
                    return name
                failed = self.pool.creation_failures - failures_before
                if failed >= self.attempts:
                    why = f"{failed} attempts failed: {self.last_error}"
                    raise MachineUnavailable(f"no machine could be created ({why})")
                remaining = deadline - self._clock()
                if remaining <= 0:
                    raise MachineUnavailable(
                        f"no machine became available within {self.acquire_timeout:g}s"
                    )
                changed = self._changed
                self._wake.set()  # a waiting build asks for a machine now
                await _wait_event(changed, min(remaining, self.interval))
        finally:
            self.pool.remove_waiter()
            self._wake.set()

    def use(self, name: str) -> None:
        """The build that acquired `name` runs on it now."""
        self.pool.use(name)

    def release(self, name: str, broken: bool = False) -> None:
        """The build on `name` is over: the machine goes back idle, or is removed."""
        if self.pool.release(name, broken):
            self._spawn(self._remove(name))
        self._notify()

    # --- the end -----------------------------------------------------------------------

    async def shutdown(self, timeout: float) -> None:
        """Stop reconciling; wait up to `timeout` seconds for driver calls, then cancel them.

        Machines stay: the next start adopts them.
        """
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.wait({self._loop_task}, timeout=timeout)
            self._loop_task = None
        if not self._ops:
            return
        _, pending = await asyncio.wait(set(self._ops), timeout=timeout)
        for task in pending:
            task.cancel()
        if pending:
            log.warning("%s: %d machine call(s) canceled at shutdown", self.label, len(pending))
            await asyncio.wait(pending, timeout=1.0)


async def _wait_event(event: asyncio.Event, timeout: float) -> None:
    """Wait until `event` is set or `timeout` passes; a cancel always goes through.

    (asyncio.wait_for of Python 3.11 drops a cancel that arrives as the event is set.)
    """
    waiter = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait({waiter}, timeout=timeout)
    finally:
        waiter.cancel()
