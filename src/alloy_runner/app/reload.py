"""SIGHUP: re-read config.toml and apply what can change while the process runs."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import TYPE_CHECKING

from alloy_runner.app import logs
from alloy_runner.config.load import load_config
from alloy_runner.exceptions import AlloyRunnerError
from alloy_runner.telemetry.catalog.naming import MetricNames
from alloy_runner.telemetry.web.server import open_access_warning

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine
    from pathlib import Path
    from typing import Any

    from alloy_runner.app.scheduler import Scheduler
    from alloy_runner.config.address import ListenAddress
    from alloy_runner.config.model import Config, RunnerConfig
    from alloy_runner.telemetry.metrics.config import ConfigTelemetry
    from alloy_runner.telemetry.web.server import MetricsServer

log = logging.getLogger(__name__)


class Reload:
    """The configuration in force; calling it (on SIGHUP) re-reads and applies the file.

    What can change while running: `log_level`, `concurrent`, `shutdown_timeout` and
    the other process-wide keys, and the metrics server's web config (TLS, basic
    auth), which new connections then use. The address, the runners, `[profiling]`
    and `[telemetry.otlp]` stay what the process started with; a change to them is
    logged as taking effect at the next restart.
    """

    def __init__(
        self,
        config: Config,
        *,
        scheduler: Scheduler,
        server: MetricsServer | None,
        address: ListenAddress | None,
        loop: asyncio.AbstractEventLoop,
        config_metrics: ConfigTelemetry | None = None,
        set_names: Callable[[MetricNames], None] | None = None,
    ) -> None:
        self.config = config
        self._config_metrics = config_metrics  # the file loaded, or refused
        self._set_names = set_names  # metric_names applies at once
        self._scheduler = scheduler
        self._server = server
        self._address = address
        self._loop = loop
        self._web_lock = asyncio.Lock()  # two SIGHUPs in a row apply in order
        self._tasks: set[asyncio.Task[None]] = set()

    def concurrent(self) -> float:
        """Return `concurrent` as in force now (`ci_runner_concurrent`)."""
        return float(self.config.concurrent)

    def runner_rotated(self, runner: RunnerConfig) -> None:
        """Keep a runner's rotated token in force: a SIGHUP then finds the file unchanged."""
        runners = tuple(runner if r.name == runner.name else r for r in self.config.runners)
        self.config = replace(self.config, runners=runners)

    def __call__(self) -> None:
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
            if self._config_metrics is not None:
                self._config_metrics.loading_failed()
            return
        if self._config_metrics is not None:
            self._config_metrics.loaded()
        self._apply(new)
        log.info("SIGHUP: configuration reloaded from %s", path)
        self._reload_web(new.metrics_web_config)

    def _apply(self, new: Config) -> None:
        old = self.config
        for warning in new.warnings:
            log.warning("%s", warning)
        if new.metrics_server != old.metrics_server:
            log.warning("SIGHUP: metrics_server changed; it takes effect at the next restart")
        if new.runners != old.runners:
            log.warning("SIGHUP: [[runners]] changed; the change takes effect at the next restart")
        if new.profiling != old.profiling:
            log.warning("SIGHUP: [profiling] changed; it takes effect at the next restart")
        if new.otlp != old.otlp:
            log.warning("SIGHUP: [telemetry.otlp] changed; it takes effect at the next restart")
        logs.set_level(new.log_level)
        if new.concurrent != old.concurrent:
            log.info("SIGHUP: concurrent %d -> %d", old.concurrent, new.concurrent)
        if new.metric_names != old.metric_names and self._set_names is not None:
            log.info("SIGHUP: metric_names %s -> %s", old.metric_names, new.metric_names)
            self._set_names(MetricNames(new.metric_names))
        # The address and the runners stay what the process started with.
        self.config = replace(
            new,
            metrics_server=old.metrics_server,
            runners=old.runners,
            profiling=old.profiling,
        )
        self._spawn(self._scheduler.set_concurrent(new.concurrent))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = self._loop.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _reload_web(self, path: Path | None) -> None:
        """Re-read the web config off the loop (bcrypt is slow); new connections then use it."""
        server = self._server
        if server is None:
            return
        if path is None:
            if server.web is not None:
                server.web = None
                log.warning("SIGHUP: metrics_web_config removed: no more TLS or basic auth")
                if warning := open_access_warning(server.bound_text, self._address, None):
                    log.warning("%s", warning)
            return
        self._spawn(self._load_web(server, path))

    async def _load_web(self, server: MetricsServer, path: Path) -> None:
        # Loaded only when a web config is in use: bcrypt and YAML cost memory otherwise.
        from alloy_runner.telemetry.web.access import load_web_access

        async with self._web_lock:
            try:
                web = await asyncio.to_thread(load_web_access, path)
            except AlloyRunnerError as exc:
                log.error("SIGHUP: keeping the running web config: %s", exc)
                return
            for warning in web.config.warnings:
                log.warning("%s", warning)
            server.web = web
            log.info("SIGHUP: web config reloaded from %s: %s", path, web.config.describe())
            if warning := open_access_warning(server.bound_text, self._address, web):
                log.warning("%s", warning)
