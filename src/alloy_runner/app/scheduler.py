"""The worker loop: slots (`concurrent`, `limit`), job requests (`request_concurrency`), builds."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from alloy_runner.build.build import Build, BuildPaths
from alloy_runner.build.states import BuildState
from alloy_runner.config import feature_flags
from alloy_runner.executors.process import RunAs
from alloy_runner.executors.shell import ShellExecutor

if TYPE_CHECKING:
    from alloy_runner.build.job import Job
    from alloy_runner.build.ports import BuildMetrics, BuildTracer
    from alloy_runner.build.registry import BuildRegistry
    from alloy_runner.config.model import RunnerConfig
    from alloy_runner.coordinator.base import JobSource
    from alloy_runner.executors.base import Executor

log = logging.getLogger(__name__)

# GitLab Runner's adaptive request concurrency: a job taken grows the limit, an empty
# answer shrinks it a little, a failed request halves it.
GROW, SHRINK, HALVE = 1.1, 0.95, 0.5
ADAPTIVE_FLAG = "FF_USE_ADAPTIVE_REQUEST_CONCURRENCY"
IDLE_WAIT = 1.0  # seconds a feeder waits for news from its source before asking again
ERROR_BACKOFF = 1.0


@dataclass
class RunnerSlot:
    """One configured runner with its source."""

    config: RunnerConfig
    source: JobSource
    reserved: int = 0  # builds running or about to start
    requests: int = 0  # job requests in flight
    adaptive: float = 0.0  # GitLab Runner's adaptive request concurrency (AIMD), before bounds

    @property
    def used_limit(self) -> int:
        """Return how many job requests may be in flight: the adaptive limit, rounded up
        (with FF_USE_ADAPTIVE_REQUEST_CONCURRENCY = false: `request_concurrency`)."""
        if not self.is_adaptive:
            return self.config.request_concurrency
        return min(max(1, math.ceil(self.adaptive)), self.config.request_concurrency)

    @property
    def is_adaptive(self) -> bool:
        """FF_USE_ADAPTIVE_REQUEST_CONCURRENCY, from `[runners.feature_flags]` (config-only)."""
        return feature_flags.configured_on(ADAPTIVE_FLAG, dict(self.config.feature_flags))

    def adapt(self, factor: float) -> None:
        """Scale the adaptive limit after a request, within 1 and request_concurrency; with
        FF_USE_ADAPTIVE_REQUEST_CONCURRENCY = false it is left as it is (GitLab Runner's
        releaseRequest skips the update)."""
        if not self.is_adaptive:
            return
        self.adaptive = min(max(1.0, self.adaptive * factor), self.config.request_concurrency)


def runner_configs(slots: Sequence[RunnerSlot]) -> list[RunnerConfig]:
    """Return the configuration of every runner (`ci_runner_limit` and the idle series)."""
    return [slot.config for slot in slots]


def requests_in_flight(slots: Sequence[RunnerSlot]) -> dict[str, int]:
    """Return the job requests in flight per runner (`ci_runner_request_concurrency`)."""
    return {slot.config.name: slot.requests for slot in slots}


def default_executor(runner: RunnerConfig) -> Executor:
    if runner.executor == "docker":
        from alloy_runner.executors.docker.executor import DockerExecutor

        return DockerExecutor(runner)
    return ShellExecutor(shell=runner.shell, kill_timeout=runner.kill_timeout)


def shell_executors(user: str) -> Callable[[RunnerConfig], Executor]:
    """Return `executor_for` of shell runners whose jobs run as `user` (empty: as this process)."""
    if not user:
        return default_executor
    run_as = RunAs.lookup(user)

    def make(runner: RunnerConfig) -> Executor:
        if runner.executor != "shell":  # `--user` is the shell executor's, as in GitLab Runner
            return default_executor(runner)
        return ShellExecutor(shell=runner.shell, kill_timeout=runner.kill_timeout, user=run_as)

    return make


class Scheduler:
    """Ask each runner's source for jobs while there is room, and run them as builds."""

    def __init__(
        self,
        concurrent: int,
        runners: list[RunnerSlot],
        *,
        registry: BuildRegistry,
        metrics: BuildMetrics,
        executor_for: Callable[[RunnerConfig], Executor] = default_executor,
        tracer: BuildTracer | None = None,
        check_interval: float = 3.0,
    ) -> None:
        self.concurrent = concurrent
        self.check_interval = check_interval
        self.runners = runners
        self._registry = registry
        self._metrics = metrics
        self._executor_for = executor_for
        self._tracer = tracer
        self._room = asyncio.Condition()
        self._feeders: list[asyncio.Task[None]] = []
        self._builds: set[asyncio.Task[None]] = set()
        self._reserved = 0
        self._request_freed = asyncio.Event()

    def requests(self) -> dict[str, int]:
        """Return the job requests in flight per runner (`ci_runner_request_concurrency`)."""
        return requests_in_flight(self.runners)

    def request_limits(self) -> dict[str, tuple[float, int]]:
        """Return each runner's adaptive and used request-concurrency limits."""
        return {r.config.name: (max(1.0, r.adaptive), r.used_limit) for r in self.runners}

    def start(self) -> None:
        for runner in self.runners:
            for n in range(runner.config.request_concurrency):
                task = asyncio.create_task(
                    self._feed(runner), name=f"feed-{runner.config.name}-{n}"
                )
                self._feeders.append(task)
        self._feeders.append(asyncio.create_task(self._watch_requests(), name="watch-requests"))

    async def _watch_requests(self) -> None:
        """Count, every check_interval, the runners whose request slots are all in flight.

        GitLab Runner feeds each runner once a check_interval and counts a feed
        that finds `request_concurrency` requests in flight as an excess request;
        here the feeders wait instead, and this watch counts what would be dropped.
        """
        while True:
            await asyncio.sleep(max(self.check_interval, 0.05))
            for runner in self.runners:
                full = runner.requests >= runner.used_limit
                if full and self._has_room(runner):
                    self._metrics.requests_exceeded(runner.config.name)

    async def set_concurrent(self, concurrent: int) -> None:
        """Apply a new `concurrent`; running builds beyond it finish, none start until below."""
        async with self._room:
            self.concurrent = concurrent
            self._room.notify_all()

    def _has_room(self, runner: RunnerSlot) -> bool:
        limit = runner.config.limit
        return self._reserved < self.concurrent and (limit == 0 or runner.reserved < limit)

    async def _reserve(self, runner: RunnerSlot) -> None:
        async with self._room:
            await self._room.wait_for(lambda: self._has_room(runner))
            self._reserved += 1
            runner.reserved += 1

    async def _release(self, runner: RunnerSlot) -> None:
        async with self._room:
            self._reserved -= 1
            runner.reserved -= 1
            self._room.notify_all()

    async def _feed(self, runner: RunnerSlot) -> None:
        name = runner.config.name
        while True:
            await self._reserve(runner)
            started = False
            try:
                await self._acquire_request(runner)
                factor = HALVE
                try:
                    job = await runner.source.request()
                    factor = GROW if job is not None else SHRINK
                finally:
                    self._release_request(runner, factor)
                if job is not None:
                    # Registered now, before its task first runs: under a burst the loop may
                    # not reach that task for a while, and the build must be visible at once.
                    build = self._register(runner, job)
                    task = asyncio.create_task(self._run(runner, build), name=f"job-{job.id}")
                    self._builds.add(task)
                    task.add_done_callback(self._builds.discard)
                    started = True
            except asyncio.CancelledError:
                raise
            except Exception:
                log.error("runner %s: asking for a job failed", name, exc_info=True)
                await asyncio.sleep(ERROR_BACKOFF)
            finally:
                if not started:
                    await self._release(runner)
            if not started:
                await runner.source.wait_for_jobs(IDLE_WAIT)

    async def _acquire_request(self, runner: RunnerSlot) -> None:
        """Wait until the runner may have one more job request in flight, and take it."""
        while runner.requests >= runner.used_limit:
            await self._request_freed.wait()
        runner.requests += 1

    def _release_request(self, runner: RunnerSlot, factor: float) -> None:
        runner.requests -= 1
        runner.adapt(factor)
        self._request_freed.set()  # wake the feeders waiting for a request slot
        self._request_freed = asyncio.Event()

    def _register(self, runner: RunnerSlot, job: Job) -> Build:
        """Make the build of a job just taken, and put it in the registry (a scrape sees it)."""
        cfg = runner.config
        paths = BuildPaths(builds_root=cfg.builds_dir, cache_root=cfg.cache_dir)
        project = job.project_name or f"project-{job.project_id}"
        slot = self._registry.claim_slot(cfg.name, project)
        build = Build(
            job,
            cfg,
            executor=self._executor_for(cfg),
            source=runner.source,
            metrics=self._metrics,
            paths=paths,
            slot=slot,
            tracer=self._tracer,
        )
        self._registry.add(build)
        return build

    async def _run(self, runner: RunnerSlot, build: Build) -> None:
        cfg, job = runner.config, build.job
        try:
            self._metrics.job_picked(cfg.name, job.queued_seconds, job.project_jobs_running)
            fields = {"job": job.id, "runner": cfg.name}  # keys of their own in JSON logs
            log.info("job %d (%s) started on runner %s", job.id, job.name, cfg.name, extra=fields)
            result = await build.run()
            log.info(
                "job %d (%s) finished: %s%s in %.2fs",
                job.id,
                job.name,
                result.state.value,
                f" ({result.failure_reason.value})" if result.failure_reason else "",
                result.duration,
                extra={**fields, "state": result.state.value, "duration": result.duration},
            )
        finally:
            self._registry.remove(build)
            self._registry.release_slot(cfg.name, build.project, build.slot)
            await self._release(runner)

    async def stop_taking(self) -> None:
        """Stop asking for jobs; running builds go on."""
        for task in self._feeders:
            task.cancel()
        await asyncio.gather(*self._feeders, return_exceptions=True)
        self._feeders.clear()

    async def drain(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for running builds; True if all ended."""
        if not self._builds:
            return True
        _, pending = await asyncio.wait(set(self._builds), timeout=timeout)
        return not pending

    async def terminate(self, timeout: float) -> None:
        """End every running build as terminated, and wait for them to record it."""
        for build in self._registry.snapshot():
            build.cancel(BuildState.TERMINATED)
        if self._builds:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(*self._builds, return_exceptions=True), timeout
                )
