"""The telemetry of a `run` process, started from the file and the OTEL_* variables.

Kept apart from `daemon.prepare`, which wires it to the rest: the metrics
(for `/metrics` and OTLP), the tracer, the CI/CD semconv metrics, the log
handlers that count errors, and continuous profiling linked to job spans.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from alloy_runner.app import logs
from alloy_runner.telemetry.metrics.log_counter import ErrorCounter
from alloy_runner.telemetry.metrics.setup import Telemetry, make_resource, resource_warnings
from alloy_runner.telemetry.otlp.cicd_metrics import system_errors
from alloy_runner.telemetry.otlp.env_lists import hide_from_sdk
from alloy_runner.telemetry.otlp.pipeline import OtlpPipeline, start_otlp
from alloy_runner.telemetry.otlp.targets import resolve
from alloy_runner.telemetry.profiling.continuous import ContinuousProfiler, start_profiling
from alloy_runner.telemetry.profiling.span_links import link_profiles

if TYPE_CHECKING:
    from alloy_runner.config.model import Config
    from alloy_runner.coordinator.spool.runs import PipelineRun
    from alloy_runner.telemetry.otlp.cicd_metrics import CicdMetrics
    from alloy_runner.version import BuildInfo

log = logging.getLogger(__name__)


@dataclass
class Observability:
    """What `start_observability` made."""

    otlp: OtlpPipeline
    telemetry: Telemetry
    cicd: CicdMetrics | None

    def run_ended(self, version: str) -> Callable[[PipelineRun], None] | None:
        """Return what records a spool pipeline's end: its span and its metrics (the runner is
        the controller of its spool's pipelines)."""
        return self.otlp.on_run_end(version, socket.gethostname(), self.cicd)


def start_observability(
    config: Config,
    build: BuildInfo,
    workers: Callable[[], Iterable[tuple[str, int]]],
    active_runs: Callable[[], Sequence[tuple[str, str]]],
) -> Observability:
    """Resolve OTLP (exit 2 on a value that cannot work), start the metrics, configure the logs."""
    targets = resolve(config.otlp, os.environ)
    resource = make_resource(build)
    warnings = (*resource_warnings(), *targets.warnings)  # logged once the log is set up
    hide_from_sdk(os.environ)  # read above: the SDK would parse them again, in its own words
    otlp = start_otlp(targets, resource)
    telemetry = Telemetry(
        build,
        resource=otlp.resource,
        extra_readers=otlp.readers,
        tracer_provider=otlp.tracer_provider,
        exemplar_filter=otlp.targets.exemplar_filter,
        meter_providers=otlp.meter_providers,
    )
    cicd = otlp.cicd_metrics(build.version, workers, active_runs)
    handlers = (ErrorCounter(telemetry), *system_errors(cicd))
    logs.configure(config.log_level, config.log_format, handlers)
    for warning in warnings:
        log.warning("%s", warning)
    if otlp.targets.enabled or otlp.targets.disabled:
        log.info("%s", otlp.targets.summary())
    return Observability(otlp, telemetry, cicd)


def start_profiles(
    config: Config, build: BuildInfo, otlp: OtlpPipeline
) -> ContinuousProfiler | None:
    """Start continuous profiling, linked to job spans when there are spans."""
    # The profiles' service name is the resource's: OTEL_SERVICE_NAME wins over the file.
    service = os.environ.get("OTEL_SERVICE_NAME", "").strip()
    profiling = replace(config.profiling, application_name=service) if service else config.profiling
    profiler = start_profiling(profiling, build, [r.name for r in config.runners])
    if profiler is not None and otlp.tracer_provider is not None:
        link_profiles(otlp.tracer_provider)  # CPU profiles carry the job's span id
    return profiler
