"""The long-running `run` process: start-up recovery, signals, the run loop, and the shutdown.

`app/wiring.py` builds the parts; this module runs them. The whole shutdown
order is `Daemon._shutdown`: stop taking jobs, let running builds finish (a
graceful stop, within `shutdown_timeout`), terminate what is left, close the
coordinator connections, stop the machine providers, then the observability
parts within one deadline.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from enum import Enum
from functools import partial
from typing import TYPE_CHECKING

from alloy_runner.app.wiring import wire
from alloy_runner.coordinator.spool.records import RecoveryOutcome
from alloy_runner.coordinator.spool.recovery import recover
from alloy_runner.coordinator.spool.source import SpoolSource
from alloy_runner.executors.orphans import kill_job_processes
from alloy_runner.memory import release_free_memory

if TYPE_CHECKING:
    from alloy_runner.app.scheduler import RunnerSlot
    from alloy_runner.app.wiring import Components
    from alloy_runner.config.model import Config

log = logging.getLogger(__name__)

TERMINATE_GRACE = 5.0  # seconds beyond a runner's kill_timeout for terminated builds to record
MACHINES_SHUTDOWN = 5.0  # seconds in-flight machine creations and removals may take at exit


class Stop(Enum):
    """How the process was asked to end."""

    GRACEFUL = "graceful"  # SIGQUIT: take no new work, let running work finish
    FORCEFUL = "forceful"  # SIGTERM, SIGINT: abort running work and exit


def run(config: Config) -> None:
    """Run the process until it is stopped; every part shuts down within its bound."""
    started = time.monotonic()
    Daemon(wire(config)).run(started)


def observability_deadline(config: Config) -> float:
    """Return the seconds the observability parts may take at exit, in all."""
    return max(1.0, min(5.0, config.shutdown_timeout))


class Daemon:
    """One `run` process: its parts, how it was asked to stop, and its run loop."""

    def __init__(self, parts: Components) -> None:
        self.parts = parts
        self._how: Stop | None = None
        self._stop = asyncio.Event()
        self._forceful = asyncio.Event()
        self._sweeps: list[asyncio.Task[None]] = []  # of what dead runners left on engines

    @property
    def config(self) -> Config:
        """Return the configuration in force (SIGHUP may have changed it)."""
        return self.parts.reload.config

    def run(self, started: float) -> None:
        """Bind the metrics server, run until a signal stops the process, then shut down."""
        parts = self.parts
        try:
            warnings = parts.observability.start()  # a taken port is then the only line
        except BaseException:
            parts.runner.close()
            raise
        for warning in (*parts.warnings, *warnings):
            log.warning("%s", warning)
        try:
            parts.runner.run(self._run())
        finally:
            parts.runner.close()
            log.info("alloy-runner stopped after %.1fs", time.monotonic() - started)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.request_stop, Stop.FORCEFUL)
        loop.add_signal_handler(signal.SIGINT, self.request_stop, Stop.FORCEFUL)
        loop.add_signal_handler(signal.SIGQUIT, self.request_stop, Stop.GRACEFUL)
        loop.add_signal_handler(signal.SIGHUP, self.parts.reload)
        try:
            await self._start()
            await self._stop.wait()
        finally:
            await self._shutdown()

    async def _start(self) -> None:
        parts = self.parts
        self._recover()
        self._start_sweeps()
        if parts.machines is not None:
            await parts.machines.start()
        parts.scheduler.start()
        if parts.rotation is not None:
            parts.rotation.start()
        log.info(
            "alloy-runner %s started: concurrent=%d runners=%s service=%s%s",
            parts.observability.telemetry.build.version,
            self.config.concurrent,
            ", ".join(r.config.name for r in parts.scheduler.runners) or "none",
            self.config.service,
            f" user={self.config.user}" if self.config.user else "",
        )
        parts.ready.set()
        release_free_memory()  # what imports and wiring freed (alloy_runner/memory.py)

    def _recover(self) -> None:
        """Stop the processes of jobs whose runner died, then fail or re-queue those jobs."""
        spool = self.parts.spool
        slots = [r for r in self.parts.scheduler.runners if isinstance(r.source, SpoolSource)]
        if spool is None or not slots:
            return
        runner = slots[0].config.name
        mode = self.config.spool_recovery
        failed = 0
        for job_id, what in recover(spool, mode, runner, kill_job_processes):
            log.warning("job %d was left running by a runner that died: %s", job_id, what)
            failed += what is RecoveryOutcome.FAILED
        if failed:  # counted once a scrape has seen them at 0, so that increase() sees them
            count = partial(self.parts.builds.jobs_lost, runner, failed)
            scraped = self.parts.observability.server is not None
            self.parts.observability.telemetry.after_first_scrape(count, scraped=scraped)

    def _start_sweeps(self) -> None:
        """Remove, in the background, what dead runners left on the docker runners' engines."""
        if any(r.executor in ("docker", "docker+machine") for r in self.config.runners):
            from alloy_runner.executors.docker.leftovers import leftover_sweeps

            self._sweeps = [asyncio.create_task(c) for c in leftover_sweeps(self.config.runners)]

    def request_stop(self, how: Stop) -> None:
        """Ask the process to stop; a forceful request overrides a graceful one in progress."""
        if how is Stop.FORCEFUL:
            self._forceful.set()
        if self._how is None or how is Stop.FORCEFUL:
            if self._how is not how:
                log.info("%s shutdown requested", how.value)
            self._how = how
        self._stop.set()

    async def _shutdown(self) -> None:
        """Stop every part, in order, each within its bound."""
        parts = self.parts
        parts.ready.clear()
        try:
            await parts.scheduler.stop_taking()
            if self._how is Stop.GRACEFUL and parts.registry.count():
                await self._drain()
            if parts.registry.count():
                log.info("terminating %d running build(s)", parts.registry.count())
                runners = parts.scheduler.runners
                grace = max((r.config.kill_timeout for r in runners), default=0.0)
                await parts.scheduler.terminate(grace + TERMINATE_GRACE)
            if parts.rotation is not None:  # it needs the coordinator connections
                await parts.rotation.stop()
            await _close_sources(parts.scheduler.runners)
            for sweep in self._sweeps:  # a sweep of leftovers still waiting on a slow engine
                sweep.cancel()
            if parts.machines is not None:
                await parts.machines.shutdown(MACHINES_SHUTDOWN)
        finally:
            # Blocking, on purpose: nothing is left for the loop to do, and the deadline is short.
            parts.observability.shutdown(observability_deadline(self.config))

    async def _drain(self) -> None:
        """Wait for running builds up to `shutdown_timeout`, or until a forceful stop."""
        log.info(
            "graceful shutdown: waiting up to %.0fs for %d running build(s)",
            self.config.shutdown_timeout,
            self.parts.registry.count(),
        )
        drained = asyncio.create_task(self.parts.scheduler.drain(self.config.shutdown_timeout))
        forceful = asyncio.create_task(self._forceful.wait())
        await asyncio.wait({drained, forceful}, return_when=asyncio.FIRST_COMPLETED)
        forceful.cancel()
        if not (drained.done() and drained.result()):
            log.warning("graceful shutdown: builds still running; terminating them")
        drained.cancel()


async def _close_sources(slots: list[RunnerSlot]) -> None:
    """Close the coordinator connections of the runners that have a url."""
    if all(slot.config.uses_spool for slot in slots):
        return
    from alloy_runner.coordinator.gitlab.source import GitlabSource

    for slot in slots:
        if isinstance(slot.source, GitlabSource):
            await slot.source.aclose()
