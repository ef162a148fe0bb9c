"""Everything that watches the process, as one object with `start()` and `shutdown(deadline)`.

The parts: the MeterProvider with its readers (`/metrics` and OTLP), the
tracer provider and the CI/CD semconv metrics (from the file and the OTEL_*
variables), the log handlers that count errors, the runtime families and
their GC timer, continuous profiling (linked to job spans when there are
spans), the metrics server and its debug routes. They are all made at
construction; `start()` starts the profiler and binds the server, and
`shutdown(deadline)` spends one deadline across them in order, the way the
OpenTelemetry SDK's `MeterProvider.shutdown` spends its timeout across its
readers: each part gets what the parts before it left.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping, MutableMapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from alloy_runner.telemetry.catalog import instruments
from alloy_runner.telemetry.metrics.log_counter import ErrorCounter
from alloy_runner.telemetry.metrics.runtime import install_runtime
from alloy_runner.telemetry.metrics.setup import Telemetry, make_resource, resource_warnings
from alloy_runner.telemetry.otlp.env_lists import hide_from_sdk
from alloy_runner.telemetry.otlp.pipeline import start_otlp
from alloy_runner.telemetry.otlp.targets import resolve
from alloy_runner.telemetry.profiling.debug_routes import DebugProfiles
from alloy_runner.telemetry.web.server import MetricsServer, Route, open_access_warning

if TYPE_CHECKING:
    import asyncio

    from alloy_runner.build.ports import BuildTracer
    from alloy_runner.config.address import ListenAddress
    from alloy_runner.config.model import OtlpConfig, ProfilingConfig
    from alloy_runner.coordinator.spool.runs import PipelineRun
    from alloy_runner.telemetry.otlp.cicd_metrics import CicdMetrics
    from alloy_runner.telemetry.profiling.continuous import ContinuousProfiler
    from alloy_runner.telemetry.web.access import WebAccess
    from alloy_runner.version import BuildInfo

log = logging.getLogger(__name__)

SERVER_SHARE = 0.5  # at most this share of the deadline for the server and the profiler


class Observability:
    """Metrics, traces, profiles and the metrics server of one `run` process."""

    def __init__(
        self,
        build: BuildInfo,
        *,
        otlp: OtlpConfig,
        profiling: ProfilingConfig,
        runners: Sequence[str],
        address: ListenAddress | None,
        web: WebAccess | None,
        loop: asyncio.AbstractEventLoop,
        ready: Callable[[], bool],
        routes: Mapping[str, Route],
        env: MutableMapping[str, str],
        workers: Callable[[], Iterable[tuple[str, int]]],
        active_runs: Callable[[], Sequence[tuple[str, str]]] | None,
    ) -> None:
        self.address = address
        targets = resolve(otlp, env)
        resource = make_resource(build, env)
        # Logged once the log is set up: what the runner ignores in the OTEL_* variables.
        self.warnings = (*resource_warnings(env), *targets.warnings)
        hide_from_sdk(env)  # read above: the SDK would parse them again, in its own words
        self.otlp = start_otlp(targets, resource)
        self.telemetry = Telemetry(
            build,
            resource=self.otlp.resource,
            extra_readers=self.otlp.readers,
            tracer_provider=self.otlp.tracer_provider,
            exemplar_filter=self.otlp.targets.exemplar_filter,
            meter_providers=self.otlp.meter_providers,
        )
        self.cicd = self.otlp.cicd_metrics(build.version, workers, active_runs)
        self.log_handlers = (ErrorCounter(self.telemetry), *_system_errors(self.cicd))
        labels = build.labels()
        self.telemetry.observe(instruments.VERSION_INFO, lambda: [(1.0, labels)])
        self.gc_timer = install_runtime(self.telemetry, loop)
        self.profiler = _profiler(profiling, build, runners, env)
        self.debug = DebugProfiles(loop, self.profiler)
        self.server = (
            MetricsServer(address, self.telemetry.registry, ready=ready, web=web)
            if address is not None
            else None
        )
        if self.server is not None:
            for path, route in routes.items():
                self.server.add_route(path, route)
            self.debug.install(self.server)

    def tracer(self) -> BuildTracer | None:
        """Return the tracer for builds, or None when traces go nowhere."""
        return self.otlp.build_tracer(self.telemetry.build.version)

    def run_ended(self) -> Callable[[PipelineRun], None] | None:
        """Return what records a spool pipeline's end: its span and its metrics (the runner is
        the controller of its spool's pipelines)."""
        version = self.telemetry.build.version
        return self.otlp.on_run_end(version, socket.gethostname(), self.cicd)

    def start(self) -> list[str]:
        """Start profiling and bind the server; return the warnings about how it is exposed.

        Raise AddressError when the server cannot bind, after shutting down what started.
        """
        if self.otlp.targets.enabled or self.otlp.targets.disabled:
            log.info("%s", self.otlp.targets.summary())
        profiling = self.profiler is not None and self.profiler.start()
        if profiling and self.otlp.tracer_provider is not None:
            from alloy_runner.telemetry.profiling.span_links import link_profiles

            link_profiles(self.otlp.tracer_provider)  # CPU profiles carry the job's span id
        if self.server is None:
            log.info("metrics server disabled (metrics_server is empty)")
            return []
        try:
            self.server.start()
        except Exception:
            self.shutdown(1.0)
            raise
        log.info("metrics server listening on %s (/metrics)", self.server.bound_text)
        web = self.server.web
        if web is not None:
            log.info("metrics server web config %s: %s", web.config.path, web.config.describe())
        warning = open_access_warning(self.server.bound_text, self.address, web)
        return [warning] if warning else []

    def shutdown(self, deadline: float) -> None:
        """Stop every part within `deadline` seconds in all; safe to call twice.

        A CPU profile being taken ends first. The profiler flushes on a thread of
        its own while the server stops, both within `SERVER_SHARE` of the
        deadline; the telemetry providers (the last OTLP export) get what is left,
        after the profiler, so that its last failure is still counted.
        """
        ends = time.monotonic() + deadline

        def left(cap: float = deadline) -> float:
            return max(0.0, min(cap, ends - time.monotonic()))

        self.debug.close()
        share = deadline * SERVER_SHARE
        profiling: threading.Thread | None = None
        if self.profiler is not None:
            profiling = self.profiler.start_shutdown(left(share))
        if self.server is not None:
            self.server.shutdown(timeout=left(share))
        self.gc_timer.uninstall()
        if profiling is not None:
            profiling.join(left(share))
        self.telemetry.shutdown(timeout=left())


def _profiler(
    config: ProfilingConfig, build: BuildInfo, runners: Sequence[str], env: Mapping[str, str]
) -> ContinuousProfiler | None:
    if not config.enabled:
        return None
    # Loaded only when profiling is configured: the relay and pyroscope-io cost memory.
    from alloy_runner.telemetry.profiling.continuous import ContinuousProfiler, default_tags

    # The profiles' service name is the resource's: OTEL_SERVICE_NAME wins over the file.
    service = env.get("OTEL_SERVICE_NAME", "").strip()
    if service:
        config = replace(config, application_name=service)
    return ContinuousProfiler(config, default_tags(build, runners))


def _system_errors(cicd: CicdMetrics | None) -> tuple[logging.Handler, ...]:
    if cicd is None:
        return ()
    from alloy_runner.telemetry.otlp.cicd_metrics import system_errors  # pushed metrics only

    return system_errors(cicd)
