"""The long-running `run` process: wiring, signals, and shutdown within its bounds."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import TYPE_CHECKING

from alloy_runner.app import logs
from alloy_runner.app.otel import start_observability, start_profiles
from alloy_runner.app.scheduler import RunnerSlot, Scheduler, default_executor
from alloy_runner.build.registry import BuildRegistry, jobs_list
from alloy_runner.build.states import BuildState, FailureReason
from alloy_runner.config.address import parse_address
from alloy_runner.config.load import load_config
from alloy_runner.config.model import Config
from alloy_runner.coordinator.spool.runs import ActiveRuns
from alloy_runner.coordinator.spool.source import SpoolSource
from alloy_runner.coordinator.spool.store import Spool
from alloy_runner.exceptions import AlloyRunnerError, ConfigError
from alloy_runner.machines.runner_providers import MachineProviders
from alloy_runner.telemetry.catalog import instruments
from alloy_runner.telemetry.metrics.api import ApiTelemetry
from alloy_runner.telemetry.metrics.builds import BuildTelemetry
from alloy_runner.telemetry.metrics.machines import install_machine_telemetry
from alloy_runner.telemetry.metrics.runtime import install_runtime
from alloy_runner.telemetry.metrics.setup import Telemetry
from alloy_runner.telemetry.profiling.continuous import (
    ContinuousProfiler,
    DebugProfiles,
)
from alloy_runner.telemetry.web.server import MetricsServer, Response
from alloy_runner.telemetry.web.webconfig import WebAccess, load_web_access
from alloy_runner.version import build_info

if TYPE_CHECKING:
    from pathlib import Path

    from alloy_runner.config.address import ListenAddress
    from alloy_runner.coordinator.api_metrics import ApiMetrics
    from alloy_runner.coordinator.spool.runs import PipelineRun
    from alloy_runner.telemetry.metrics.runtime import GcTimer

log = logging.getLogger(__name__)

TERMINATE_GRACE = 5.0  # seconds beyond a runner's kill_timeout for terminated builds to record
MACHINES_SHUTDOWN = 5.0  # seconds in-flight machine creations and removals may take at exit


class Stop(Enum):
    """How the process was asked to end."""

    GRACEFUL = "graceful"  # SIGQUIT: take no new work, let running work finish
    FORCEFUL = "forceful"  # SIGTERM, SIGINT: abort running work and exit


@dataclass
class Daemon:
    """The state of one `run` process that telemetry observes and signals change."""

    config: Config
    address: ListenAddress | None
    telemetry: Telemetry
    registry: BuildRegistry
    scheduler: Scheduler
    spool: Spool | None = None
    builds: BuildTelemetry | None = None
    server: MetricsServer | None = None
    loop: asyncio.AbstractEventLoop | None = None
    gc_timer: GcTimer | None = None
    profiler: ContinuousProfiler | None = None
    debug: DebugProfiles | None = None
    machines: MachineProviders | None = None
    ready: bool = False
    _how: Stop | None = field(default=None, init=False)
    _stop: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _forceful: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _web_lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)
    _sweep: list[asyncio.Task[None]] = field(default_factory=list, init=False)

    async def run(self) -> None:
        """Take and run jobs until a signal asks to stop; then stop within the bounds."""
        self.loop = asyncio.get_running_loop()
        for sig, handler in (
            (signal.SIGTERM, lambda: self.request_stop(Stop.FORCEFUL)),
            (signal.SIGINT, lambda: self.request_stop(Stop.FORCEFUL)),
            (signal.SIGQUIT, lambda: self.request_stop(Stop.GRACEFUL)),
            (signal.SIGHUP, self.reload),
        ):
            self.loop.add_signal_handler(sig, handler)
        self._recover()
        self._start_sweeps()
        if self.machines is not None:
            await self.machines.start()
        self.scheduler.start()
        log.info(
            "alloy-runner %s started: concurrent=%d runners=%s",
            self.telemetry.build.version,
            self.config.concurrent,
            ", ".join(r.config.name for r in self.scheduler.runners) or "none",
        )
        self.ready = True
        await self._stop.wait()
        self.ready = False
        await self.scheduler.stop_taking()
        running = self.registry.count()
        if self._how is Stop.GRACEFUL and running:
            log.info(
                "graceful shutdown: waiting up to %.0fs for %d running build(s)",
                self.config.shutdown_timeout,
                running,
            )
            drained = asyncio.create_task(self.scheduler.drain(self.config.shutdown_timeout))
            forceful = asyncio.create_task(self._forceful.wait())
            await asyncio.wait({drained, forceful}, return_when=asyncio.FIRST_COMPLETED)
            forceful.cancel()
            if not (drained.done() and drained.result()):
                log.warning("graceful shutdown: builds still running; terminating them")
            drained.cancel()
        if self.registry.count():
            log.info("terminating %d running build(s)", self.registry.count())
            grace = max((r.config.kill_timeout for r in self.scheduler.runners), default=0.0)
            await self.scheduler.terminate(grace + TERMINATE_GRACE)
        await _close_sources(self.scheduler.runners)
        for sweep in self._sweep:  # a sweep of leftovers still waiting on a slow engine
            sweep.cancel()
        if self.machines is not None:
            await self.machines.shutdown(MACHINES_SHUTDOWN)

    def _start_sweeps(self) -> None:
        """Remove, in the background, what dead runners left on the docker runners' engines."""
        if any(r.executor in ("docker", "docker+machine") for r in self.config.runners):
            from alloy_runner.executors.docker.leftovers import leftover_sweeps

            self._sweep = [asyncio.create_task(c) for c in leftover_sweeps(self.config.runners)]

    def _recover(self) -> None:
        if self.spool is None:
            return
        spool_runners = [r for r in self.scheduler.runners if isinstance(r.source, SpoolSource)]
        if not spool_runners:
            return
        runner = spool_runners[0].config.name
        for job_id, what in self.spool.recover(self.config.spool_recovery, runner):
            log.warning("job %d was left running by a runner that died: %s", job_id, what)
            if what == "failed" and self.builds is not None:
                self.builds.job_finished(
                    runner, BuildState.FAILED, FailureReason.RUNNER_SYSTEM_FAILURE, None
                )

    def request_stop(self, how: Stop) -> None:
        """Ask the process to stop; a forceful request overrides a graceful one in progress."""
        if how is Stop.FORCEFUL:
            self._forceful.set()
        if self._how is None or how is Stop.FORCEFUL:
            if self._how is not how:
                log.info("%s shutdown requested", how.value)
            self._how = how
        self._stop.set()

    def reload(self) -> None:
        """Re-read config.toml and apply what can change while running (SIGHUP)."""
        path = self.config.path
        if path is None:
            if self.config.metrics_web_config is None:
                log.info("SIGHUP: no config file in use (embedded default); nothing to reload")
            self._reload_web(self.config.metrics_web_config)
            return
        try:
            # The flags and env that won over the file at start win over it again.
            new = load_config(path).with_overrides(**dict(self.config.overrides))
        except AlloyRunnerError as exc:
            log.error("SIGHUP: keeping the running configuration: %s", exc)
            return
        for warning in new.warnings:
            log.warning("%s", warning)
        if new.metrics_server != self.config.metrics_server:
            log.warning("SIGHUP: metrics_server changed; it takes effect at the next restart")
        if new.runners != self.config.runners:
            log.warning("SIGHUP: [[runners]] changed; the change takes effect at the next restart")
        if new.profiling != self.config.profiling:
            log.warning("SIGHUP: [profiling] changed; it takes effect at the next restart")
        if new.otlp != self.config.otlp:
            log.warning("SIGHUP: [telemetry.otlp] changed; it takes effect at the next restart")
        logs.set_level(new.log_level)
        if new.concurrent != self.config.concurrent:
            log.info("SIGHUP: concurrent %d -> %d", self.config.concurrent, new.concurrent)
        # The address and the runners stay what the process started with.
        self.config = replace(
            new,
            metrics_server=self.config.metrics_server,
            runners=self.config.runners,
            profiling=self.config.profiling,
        )
        if self.loop is not None:
            self.loop.create_task(self.scheduler.set_concurrent(new.concurrent))
        log.info("SIGHUP: configuration reloaded from %s", path)
        self._reload_web(new.metrics_web_config)

    def _reload_web(self, path: Path | None) -> None:
        """Re-read the web config off the loop (bcrypt is slow); new connections then use it."""
        if self.server is None or self.loop is None:
            return
        if path is None:
            if self.server.web is not None:
                self.server.web = None
                log.warning("SIGHUP: metrics_web_config removed: no more TLS or basic auth")
                if warning := open_access_warning(self.server.bound_text, self.address, None):
                    log.warning("%s", warning)
            return
        self.loop.create_task(self._load_web(self.server, path))

    async def _load_web(self, server: MetricsServer, path: Path) -> None:
        async with self._web_lock:  # two SIGHUPs in a row apply in order
            try:
                web = await asyncio.to_thread(load_web_access, path)
            except AlloyRunnerError as exc:
                log.error("SIGHUP: keeping the running web config: %s", exc)
                return
            for warning in web.config.warnings:
                log.warning("%s", warning)
            server.web = web
            log.info("SIGHUP: web config reloaded from %s: %s", path, web.config.describe())
            if warning := open_access_warning(server.bound_text, self.address, web):
                log.warning("%s", warning)


def open_access_warning(bound: str, address: ListenAddress | None, web: WebAccess | None) -> str:
    """Return the warning for a metrics server that other hosts reach without TLS or auth, or ""."""
    if address is None or address.is_loopback or (web is not None and web.config.protected):
        return ""
    return (
        f"metrics server on {bound} is reachable from other hosts and has no authorization: "
        "bind it to localhost, set metrics_web_config (--web.config.file) for TLS and basic "
        "auth, or put a proxy with access control in front of it"
    )


async def _close_sources(slots: list[RunnerSlot]) -> None:
    """Close the coordinator connections of the runners that have a url."""
    if all(slot.config.uses_spool for slot in slots):
        return
    from alloy_runner.coordinator.gitlab.source import GitlabSource

    for slot in slots:
        if isinstance(slot.source, GitlabSource):
            await slot.source.aclose()


def _runner_slots(
    config: Config,
    api: ApiMetrics | None = None,
    on_run_end: Callable[[PipelineRun], None] | None = None,
) -> tuple[Spool | None, list[RunnerSlot]]:
    spool: Spool | None = None
    slots: list[RunnerSlot] = []
    for runner in config.runners:
        if not runner.uses_spool:
            # httpx is imported only by a process that talks to a coordinator.
            from alloy_runner.coordinator.gitlab.source import GitlabSource

            try:
                source = GitlabSource(runner, metrics=api, check_interval=config.check_interval)
            except ConfigError as exc:
                raise ConfigError(f"runner {runner.name}: {exc}") from None
            slots.append(RunnerSlot(runner, source))
            continue
        if spool is None:
            spool = Spool(config.spool_dir)
            try:
                spool.ensure()
            except OSError as exc:
                raise ConfigError(
                    f"spool_dir {config.spool_dir}: cannot create it: {exc}"
                ) from None
        slots.append(RunnerSlot(runner, SpoolSource(spool, runner.name, on_run_end=on_run_end)))
    return spool, slots


def prepare(config: Config) -> Daemon:
    """Check the address, start telemetry and bind the metrics server; raise on bad input."""
    address = parse_address(config.metrics_server)
    web_path = config.metrics_web_config
    web = load_web_access(web_path) if web_path is not None else None
    build = build_info()
    # The CI/CD metrics read the registry and the spool made below (closures bind late).
    seen = start_observability(
        config,
        build,
        workers=lambda: [(r.name, registry.count(r.name)) for r in config.runners],
        active_runs=lambda: active_runs() if active_runs is not None else [],
    )
    otlp, telemetry = seen.otlp, seen.telemetry
    spool, slots = _runner_slots(config, ApiTelemetry(telemetry), seen.run_ended(build.version))
    active_runs = ActiveRuns(spool) if spool is not None else None
    registry = BuildRegistry()
    # The requests observer reads the scheduler made just below (closures bind late).
    builds = BuildTelemetry(
        telemetry,
        registry,
        runners=lambda: [s.config for s in slots],
        requests=lambda: scheduler.requests(),  # noqa: PLW0108
    )
    # The machine observers read the providers made just below, as the builds' do.
    machine_metrics = install_machine_telemetry(
        telemetry,
        lambda e: machines.snapshot(e),  # noqa: PLW0108
    )
    machines = MachineProviders(config.runners, machine_metrics.__getitem__)
    scheduler = Scheduler(
        config.concurrent,
        slots,
        registry=registry,
        metrics=builds,
        executor_for=machines.executor_for(default_executor),
        tracer=otlp.build_tracer(build.version),
    )
    daemon = Daemon(
        config=config,
        address=address,
        telemetry=telemetry,
        registry=registry,
        scheduler=scheduler,
        spool=spool,
        builds=builds,
        machines=machines,
    )
    labels = build.labels()
    telemetry.observe(instruments.VERSION_INFO, lambda: [(1.0, labels)])
    telemetry.observe(instruments.CONCURRENT, lambda: float(daemon.config.concurrent))
    daemon.gc_timer = install_runtime(telemetry, lambda: daemon.loop)
    daemon.profiler = start_profiles(config, build, otlp)
    # Warnings wait until the server is bound: a port that is taken is then the only line.
    warnings = [*config.warnings, *(web.config.warnings if web is not None else ())]
    if not slots:
        warnings.append("no [[runners]] that can take jobs: this process takes no jobs")
    if address is None:
        log.info("metrics server disabled (metrics_server is empty)")
        _log_all(warnings)
        return daemon
    server = MetricsServer(address, telemetry.registry, ready=lambda: daemon.ready, web=web)
    server.add_route(
        "/debug/jobs/list", lambda _p, _h: Response(jobs_list(registry.snapshot()).encode())
    )
    daemon.debug = DebugProfiles(
        lambda: daemon.loop, daemon.profiler.destination if daemon.profiler else None
    )
    daemon.debug.install(server)
    try:
        server.start()
    except AlloyRunnerError:
        if daemon.profiler is not None:
            daemon.profiler.shutdown(timeout=1.0)
        telemetry.shutdown(timeout=1.0)
        raise
    daemon.server = server
    log.info("metrics server listening on %s (/metrics)", server.bound_text)
    if web is not None:
        log.info("metrics server web config %s: %s", web.config.path, web.config.describe())
    if warning := open_access_warning(server.bound_text, address, web):
        warnings.append(warning)
    _log_all(warnings)
    return daemon


def _log_all(warnings: list[str]) -> None:
    for warning in warnings:
        log.warning("%s", warning)


def run(config: Config) -> None:
    """Run the process until it is stopped; every part shuts down within its bound."""
    started = time.monotonic()
    daemon = prepare(config)
    try:
        asyncio.run(daemon.run())
    finally:
        deadline = max(1.0, min(5.0, config.shutdown_timeout))
        if daemon.debug is not None:
            daemon.debug.close()  # a CPU profile being taken ends now
        # Profiling stops while the metrics server does, in the same half of the bound.
        profiling = daemon.profiler.start_shutdown(deadline / 2) if daemon.profiler else None
        if daemon.server is not None:
            daemon.server.shutdown(timeout=deadline / 2)
        if daemon.gc_timer is not None:
            daemon.gc_timer.uninstall()
        if profiling is not None:  # before telemetry: its last failure is still counted
            profiling.join(deadline / 2)
        daemon.telemetry.shutdown(timeout=deadline / 2)
        log.info("alloy-runner stopped after %.1fs", time.monotonic() - started)
