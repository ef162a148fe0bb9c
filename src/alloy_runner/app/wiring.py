"""Build the parts of one `run` process in dependency order, each whole when it is made.

The order: what can be refused without side effects first (the address, the
web config, the spool directory), then the event loop, the observability
object (metrics, OTLP, profiling, the metrics server, not yet bound), logging,
the runners' sources, the build and machine metrics, the machine providers,
the scheduler, and the reload that holds the configuration in force. Nothing
is filled in later.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from alloy_runner.app import logs
from alloy_runner.app.reload import Reload
from alloy_runner.app.scheduler import (
    RunnerSlot,
    Scheduler,
    requests_in_flight,
    runner_configs,
    shell_executors,
)
from alloy_runner.build.registry import BuildRegistry, jobs_list
from alloy_runner.config.address import parse_address
from alloy_runner.config.model import MACHINE_EXECUTORS, Config
from alloy_runner.coordinator.spool.runs import ActiveRuns
from alloy_runner.coordinator.spool.source import SpoolSource
from alloy_runner.coordinator.spool.store import Spool
from alloy_runner.exceptions import ConfigError
from alloy_runner.telemetry.catalog import instruments
from alloy_runner.telemetry.catalog.naming import MetricNames
from alloy_runner.telemetry.metrics.api import ApiTelemetry
from alloy_runner.telemetry.metrics.builds import BuildTelemetry
from alloy_runner.telemetry.metrics.config import ConfigTelemetry
from alloy_runner.telemetry.metrics.identity import runner_identities, system_id
from alloy_runner.telemetry.metrics.machines import (
    MachineTelemetry,
    install_machine_telemetry,
    observe_machine_states,
)
from alloy_runner.telemetry.observability import Observability
from alloy_runner.telemetry.web.server import Response
from alloy_runner.version import build_info

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from alloy_runner.coordinator.api_metrics import ApiMetrics
    from alloy_runner.coordinator.gitlab.rotation import TokenRotation
    from alloy_runner.coordinator.spool.runs import PipelineRun
    from alloy_runner.machines.metrics import MachineState
    from alloy_runner.machines.runner_providers import MachineProviders
    from alloy_runner.telemetry.web.access import WebAccess


log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Components:
    """Every part of one `run` process, as `wire` made them."""

    runner: asyncio.Runner  # its loop exists from the start; the daemon runs on it
    ready: threading.Event  # set while the process takes jobs (/-/ready)
    observability: Observability
    registry: BuildRegistry
    scheduler: Scheduler
    builds: BuildTelemetry
    reload: Reload  # holds the configuration in force
    spool: Spool | None  # None: no runner takes its jobs from a spool
    machines: MachineProviders | None  # None: no docker+machine runner
    warnings: tuple[str, ...]  # logged once the metrics server is bound
    rotation: TokenRotation | None = None  # None: no runner token expires


def wire(config: Config) -> Components:
    """Build every part of the process for `config`; raise ConfigError on bad input."""
    address = parse_address(config.metrics_server)
    web = _load_web(config.metrics_web_config)
    spool = _spool(config)
    runner = asyncio.Runner()
    registry = BuildRegistry()
    ready = threading.Event()
    try:
        observability = Observability(
            build_info(),
            otlp=config.otlp,
            profiling=config.profiling,
            runners=[r.name for r in config.runners],
            address=address,
            web=web,
            loop=runner.get_loop(),
            ready=ready.is_set,
            routes={"/debug/jobs/list": partial(_jobs_list, registry)},
            env=os.environ,
            workers=partial(_workers, registry, [r.name for r in config.runners]),
            active_runs=ActiveRuns(spool) if spool is not None else None,
        )
        # /metrics shows the ci_* names, GitLab Runner's (with its runner labels), or both.
        reader = observability.telemetry.prometheus
        reader.names = MetricNames(config.metric_names)
        reader.identities = partial(dict, runner_identities(config.runners, system_id(config.path)))
    except BaseException:
        runner.close()
        raise
    try:
        return _components(
            config, spool, runner, ready=ready, observability=observability, registry=registry
        )
    except BaseException:
        # Nothing was started or sent yet, and the process exits on the error: a final
        # OTLP export now could only add lines to the one line that says what is wrong.
        observability.gc_timer.uninstall()
        runner.close()
        raise


def _components(
    config: Config,
    spool: Spool | None,
    runner: asyncio.Runner,
    *,
    ready: threading.Event,
    observability: Observability,
    registry: BuildRegistry,
) -> Components:
    telemetry = observability.telemetry
    _configure_logs(config, observability)
    coordinated = [r.name for r in config.runners if not r.uses_spool]
    api = ApiTelemetry(telemetry, coordinated)
    slots = runner_slots(config, spool, api, observability.run_ended())
    builds = BuildTelemetry(
        telemetry,
        registry,
        runners=partial(runner_configs, slots),
        requests=partial(requests_in_flight, slots),
        limits=lambda: scheduler.request_limits(),  # noqa: PLW0108 - made below
    )
    machines = _machine_providers(config, install_machine_telemetry(telemetry))
    observe_machine_states(telemetry, machines.snapshot if machines is not None else _no_machines)
    executors = shell_executors(config.user)  # `run --user`: shell jobs as that user
    scheduler = Scheduler(
        config.concurrent,
        slots,
        registry=registry,
        metrics=builds,
        executor_for=executors if machines is None else machines.executor_for(executors),
        tracer=observability.tracer(),
        check_interval=config.check_interval,
    )
    config_metrics = ConfigTelemetry(telemetry, loaded=config.path is not None)
    reload = _reload(config, scheduler, observability, runner.get_loop(), config_metrics)
    telemetry.observe(instruments.CONCURRENT, reload.concurrent)
    return Components(
        runner=runner,
        ready=ready,
        observability=observability,
        registry=registry,
        scheduler=scheduler,
        builds=builds,
        reload=reload,
        spool=spool,
        machines=machines,
        warnings=_warnings(config, observability, slots),
        rotation=_rotation(config, slots, config_metrics, reload),
    )


def _reload(
    config: Config,
    scheduler: Scheduler,
    observability: Observability,
    loop: asyncio.AbstractEventLoop,
    config_metrics: ConfigTelemetry,
) -> Reload:
    """Return what a SIGHUP calls; it counts the loads of the file, and names the metrics."""
    telemetry = observability.telemetry
    return Reload(
        config,
        scheduler=scheduler,
        server=observability.server,
        address=observability.address,
        loop=loop,
        config_metrics=config_metrics,
        set_names=partial(setattr, telemetry.prometheus, "names"),
    )


def _rotation(
    config: Config, slots: list[RunnerSlot], saves: ConfigTelemetry, reload: Reload
) -> TokenRotation | None:
    """Return what rotates the runners' expiring tokens; None if no token expires."""
    if config.path is None or all(r.token_expires_at is None for r in config.runners):
        return None
    from alloy_runner.coordinator.gitlab.rotation import TokenRotation
    from alloy_runner.coordinator.gitlab.source import GitlabSource

    return TokenRotation(
        ((s.config, s.source) for s in slots if isinstance(s.source, GitlabSource)),
        path=config.path,
        saves=saves,
        on_rotated=reload.runner_rotated,
    )


def _warnings(
    config: Config, observability: Observability, slots: list[RunnerSlot]
) -> tuple[str, ...]:
    """Return the warnings about the configuration, logged once the server is bound."""
    web = observability.server.web if observability.server is not None else None
    warnings = [*config.warnings, *(web.config.warnings if web is not None else ())]
    if not slots:
        warnings.append("no [[runners]] that can take jobs: this process takes no jobs")
    return tuple(warnings)


def _configure_logs(config: Config, observability: Observability) -> None:
    """Send the logs where config says, counted; then say what OTEL_* values are ignored."""
    logs.configure(config.log_level, config.log_format, observability.log_handlers)
    for warning in observability.warnings:
        log.warning("%s", warning)


def _load_web(path: Path | None) -> WebAccess | None:
    if path is None:
        return None
    # Loaded only when a web config is in use: bcrypt and YAML cost memory otherwise.
    from alloy_runner.telemetry.web.access import load_web_access

    return load_web_access(path)


def _jobs_list(registry: BuildRegistry, _params: object, _headers: object) -> Response:
    return Response(jobs_list(registry.snapshot()).encode())


def _machine_providers(
    config: Config, metrics: dict[str, MachineTelemetry]
) -> MachineProviders | None:
    if not any(r.executor in MACHINE_EXECUTORS for r in config.runners):
        return None
    # Loaded only by a process with docker+machine runners (drivers, pool, schedules).
    from alloy_runner.machines.runner_providers import MachineProviders

    return MachineProviders(config.runners, metrics.__getitem__)


def _no_machines(_executor: str) -> dict[MachineState, int]:
    return {}


def _spool(config: Config) -> Spool | None:
    """Return the spool of the runners without a url, made ready; None if there are none."""
    if not any(runner.uses_spool for runner in config.runners):
        return None
    spool = Spool(config.spool_dir)
    try:
        spool.ensure()
    except OSError as exc:
        raise ConfigError(f"spool_dir {config.spool_dir}: cannot create it: {exc}") from None
    return spool


def _workers(registry: BuildRegistry, runners: list[str]) -> list[tuple[str, int]]:
    """Return the builds running per runner (`cicd.worker.count`)."""
    return [(name, registry.count(name)) for name in runners]


def runner_slots(
    config: Config,
    spool: Spool | None,
    api: ApiMetrics | None = None,
    on_run_end: Callable[[PipelineRun], None] | None = None,
) -> list[RunnerSlot]:
    """Return one slot per runner, with its job source."""
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
        assert spool is not None  # made for the runners without a url
        slots.append(RunnerSlot(runner, SpoolSource(spool, runner.name, on_run_end=on_run_end)))
    return slots
