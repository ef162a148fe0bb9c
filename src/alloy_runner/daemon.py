"""The long-running `run` process: telemetry, the metrics server, signals and shutdown."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from alloy_runner import logs
from alloy_runner.config import Config, load_config
from alloy_runner.exceptions import AlloyRunnerError
from alloy_runner.telemetry import instruments as i
from alloy_runner.telemetry.address import parse_address
from alloy_runner.telemetry.errors import ErrorCounter
from alloy_runner.telemetry.runtime import install_runtime
from alloy_runner.telemetry.server import MetricsServer
from alloy_runner.telemetry.setup import Telemetry
from alloy_runner.version import build_info

if TYPE_CHECKING:
    from alloy_runner.telemetry.address import ListenAddress
    from alloy_runner.telemetry.runtime import GcTimer

log = logging.getLogger(__name__)


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
    server: MetricsServer | None = None
    loop: asyncio.AbstractEventLoop | None = None
    gc_timer: GcTimer | None = None
    ready: bool = False

    def __post_init__(self) -> None:
        self._stop: asyncio.Future[Stop] | None = None

    async def run(self) -> None:
        """Serve until a signal asks to stop; then shut down within the configured bounds."""
        self.loop = asyncio.get_running_loop()
        self._stop = self.loop.create_future()
        for sig, handler in (
            (signal.SIGTERM, lambda: self.request_stop(Stop.FORCEFUL)),
            (signal.SIGINT, lambda: self.request_stop(Stop.FORCEFUL)),
            (signal.SIGQUIT, lambda: self.request_stop(Stop.GRACEFUL)),
            (signal.SIGHUP, self.reload),
        ):
            self.loop.add_signal_handler(sig, handler)
        runners = ", ".join(r.name for r in self.config.runners) or "none"
        log.info(
            "alloy-runner %s started: concurrent=%d runners=%s",
            self.telemetry.build.version,
            self.config.concurrent,
            runners,
        )
        if not self.config.runners:
            log.warning("no [[runners]] configured: this process takes no jobs")
        self.ready = True
        how = await self._stop
        self.ready = False
        log.info("%s shutdown requested", how.value)

    def request_stop(self, how: Stop) -> None:
        """Ask the loop to stop; a forceful request overrides a graceful one in progress."""
        if self._stop is not None and not self._stop.done():
            self._stop.set_result(how)

    def reload(self) -> None:
        """Re-read config.toml and apply what can change while running (SIGHUP)."""
        path = self.config.path
        if path is None:
            log.info("SIGHUP: no config file in use (embedded default); nothing to reload")
            return
        try:
            new = load_config(path)
        except AlloyRunnerError as exc:
            log.error("SIGHUP: keeping the running configuration: %s", exc)
            return
        for warning in new.warnings:
            log.warning("%s", warning)
        if new.metrics_server != self.config.metrics_server:
            log.warning("SIGHUP: metrics_server changed; it takes effect at the next restart")
        logs.set_level(new.log_level)
        if new.concurrent != self.config.concurrent:
            log.info("SIGHUP: concurrent %d -> %d", self.config.concurrent, new.concurrent)
        # The listening address stays what the process started with.
        self.config = new.with_overrides(metrics_server=self.config.metrics_server)
        log.info("SIGHUP: configuration reloaded from %s", path)


def prepare(config: Config) -> Daemon:
    """Check the address, start telemetry and bind the metrics server; raise on bad input."""
    address = parse_address(config.metrics_server)
    build = build_info()
    telemetry = Telemetry(build)
    logs.configure(config.log_level, config.log_format, (ErrorCounter(telemetry),))
    for warning in config.warnings:
        log.warning("%s", warning)
    daemon = Daemon(config=config, address=address, telemetry=telemetry)
    labels = build.labels()
    telemetry.observe(i.VERSION_INFO, lambda: [(1.0, labels)])
    telemetry.observe(i.CONCURRENT, lambda: float(daemon.config.concurrent))
    daemon.gc_timer = install_runtime(telemetry, lambda: daemon.loop)
    if address is None:
        log.info("metrics server disabled (metrics_server is empty)")
        return daemon
    server = MetricsServer(address, telemetry.registry, ready=lambda: daemon.ready)
    try:
        server.start()
    except AlloyRunnerError:
        telemetry.shutdown(timeout=1.0)
        raise
    daemon.server = server
    log.info("metrics server listening on %s (/metrics)", server.bound_text)
    if not address.is_loopback:
        log.warning(
            "metrics server on %s is reachable from other hosts and has no authorization: "
            "bind it to localhost or put a proxy with access control in front of it",
            server.bound_text,
        )
    return daemon


def run(config: Config) -> None:
    """Run the process until it is stopped; every part shuts down within its bound."""
    started = time.monotonic()
    daemon = prepare(config)
    try:
        asyncio.run(daemon.run())
    finally:
        deadline = max(1.0, min(5.0, config.shutdown_timeout))
        if daemon.server is not None:
            daemon.server.shutdown(timeout=deadline / 2)
        if daemon.gc_timer is not None:
            daemon.gc_timer.uninstall()
        daemon.telemetry.shutdown(timeout=deadline / 2)
        log.info("alloy-runner stopped after %.1fs", time.monotonic() - started)
