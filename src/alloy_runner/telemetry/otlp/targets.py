"""Shipping over OTLP/HTTP: where to, the metric reader and span processor, and sink health.

The same instruments that feed `/metrics` are pushed by a second reader on
the one MeterProvider, so nothing is counted twice. A collector that is down
or slow costs a background thread some waiting and, for spans, a bounded
queue: builds never wait on it, and its failure is logged once per outage.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from opentelemetry.util.re import parse_env_headers

from alloy_runner.exceptions import ConfigError
from alloy_runner.telemetry.otlp.tracing import JobTracer

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics.export import MetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    from alloy_runner.build.ports import BuildTracer
    from alloy_runner.config.model import OtlpConfig

log = logging.getLogger(__name__)

ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"
HEADERS = "OTEL_EXPORTER_OTLP_HEADERS"
TIMEOUT = "OTEL_EXPORTER_OTLP_TIMEOUT"
INTERVAL = "OTEL_METRIC_EXPORT_INTERVAL"
MAX_QUEUED_SPANS = 2048  # spans held while the collector is away; older ones are dropped first
MAX_SPANS_PER_EXPORT = 512

# The loggers the SDK complains through, once per export; `ExportHealth` speaks for them.
_LIBRARY_LOGGERS = {
    "metrics": ("opentelemetry.exporter.otlp.proto.http.metric_exporter",),
    "traces": (
        "opentelemetry.exporter.otlp.proto.http.trace_exporter",
        "opentelemetry.sdk._shared_internal",  # the batch span processor: "Queue full, dropping"
    ),
}


@dataclass(frozen=True)
class Signal:
    """Where one signal (metrics or traces) goes, resolved from the file and the environment."""

    name: str
    endpoint: str
    headers: dict[str, str] = field(default_factory=dict)
    timeout: float | None = None  # None: the exporter's own OTEL_*_TIMEOUT or 10 s


@dataclass(frozen=True)
class OtlpTargets:
    """What to push: `metrics` and `traces` are None when that signal has no endpoint."""

    metrics: Signal | None
    traces: Signal | None
    interval: float | None = None  # seconds; None: OTEL_METRIC_EXPORT_INTERVAL or 60 s

    @property
    def enabled(self) -> bool:
        return self.metrics is not None or self.traces is not None

    def summary(self) -> str:
        """Describe the targets in one log line."""
        parts = []
        if self.metrics is not None:
            every = f" every {self.interval:g}s" if self.interval is not None else ""
            parts.append(f"metrics to {self.metrics.endpoint}{every}")
        if self.traces is not None:
            parts.append(f"traces to {self.traces.endpoint}")
        return "OTLP/HTTP: pushing " + " and ".join(parts) if parts else "OTLP: off"


def _url(value: str, where: str) -> str:
    value = value.strip()
    if not value.startswith(("http://", "https://")):
        raise ConfigError(f"{where}: expected an http:// or https:// URL, got {value!r}")
    return value


def _signal(
    name: str, config: OtlpConfig, env: Mapping[str, str]
) -> Signal | None:  # a signal's own variable, then the shared one, then the file
    upper = name.upper()
    own = env.get(f"OTEL_EXPORTER_OTLP_{upper}_ENDPOINT", "").strip()
    shared = env.get(ENDPOINT, "").strip()
    if own:
        endpoint = _url(own, f"OTEL_EXPORTER_OTLP_{upper}_ENDPOINT")
    elif shared:
        endpoint = _url(shared, ENDPOINT).rstrip("/") + f"/v1/{name}"
    elif config.endpoint:
        endpoint = _url(config.endpoint, "telemetry.otlp.endpoint").rstrip("/") + f"/v1/{name}"
    else:
        return None
    headers = dict(config.headers)
    for variable in (HEADERS, f"OTEL_EXPORTER_OTLP_{upper}_HEADERS"):
        headers.update(parse_env_headers(env.get(variable, ""), liberal=True))
    env_timeout = env.get(TIMEOUT) or env.get(f"OTEL_EXPORTER_OTLP_{upper}_TIMEOUT")
    return Signal(name, endpoint, headers, None if env_timeout else config.timeout)


def resolve(config: OtlpConfig, env: Mapping[str, str]) -> OtlpTargets:
    """Combine `[telemetry.otlp]` with the standard OTEL_* variables, which win where set."""
    return OtlpTargets(
        metrics=_signal("metrics", config, env),
        traces=_signal("traces", config, env),
        interval=None if env.get(INTERVAL) else config.interval,
    )


class ExportHealth(logging.Filter):
    """Log a sink's failure once per outage, and its recovery once; never once per export.

    Attached as a filter to the SDK's exporter loggers, it keeps their
    per-export complaints (demoted to debug, shown only at `log_level = "debug"`)
    and quotes the first of a failed export in its own warning.
    """

    def __init__(self, signal: str, endpoint: str) -> None:
        super().__init__()
        self.signal = signal
        self.endpoint = endpoint
        self._lock = threading.Lock()
        self._failing = False
        self._dropping = False
        self._complaint = ""
        self._loggers = _LIBRARY_LOGGERS.get(signal, ())

    def install(self) -> None:
        for name in self._loggers:
            logging.getLogger(name).addFilter(self)

    def uninstall(self) -> None:
        for name in self._loggers:
            logging.getLogger(name).removeFilter(self)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.levelno >= logging.WARNING:
            if message.startswith("Queue full"):
                self._dropping_spans()
            elif not self._complaint:  # the first says why; the last only that it gave up
                self._complaint = message
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return log.isEnabledFor(logging.DEBUG)

    def _dropping_spans(self) -> None:
        with self._lock:
            if self._dropping:
                return
            self._dropping = True
        log.warning(
            "OTLP %s: %d spans are waiting for %s; the oldest are dropped until it takes them",
            self.signal,
            MAX_QUEUED_SPANS,
            self.endpoint,
        )

    def exported(self, ok: bool, error: BaseException | None = None) -> None:
        """Note the outcome of one export; log only a change between working and failing.

        `error` is what the last request raised, if it raised (an HTTP error
        status is known from the library's complaint instead).
        """
        with self._lock:
            changed = self._failing == ok
            self._failing = not ok
            if ok:
                self._dropping = False
            complaint, self._complaint = self._complaint, ""
        if not changed:
            return
        if ok:
            log.info("OTLP %s: exporting to %s works again", self.signal, self.endpoint)
            return
        if error is not None:
            from alloy_runner.telemetry.otlp.exporters import reason

            why = reason(error)
        else:
            why = complaint or "no reason given"
        log.warning(
            "OTLP %s: export to %s failed (%s); builds are unaffected, and further failures "
            "are not logged until an export succeeds",
            self.signal,
            self.endpoint,
            why,
        )

    @property
    def failing(self) -> bool:
        return self._failing


@dataclass
class OtlpPipeline:
    """The OTLP side of one process: a metric reader and a tracer provider, each optional."""

    targets: OtlpTargets
    resource: Resource
    reader: MetricReader | None = None
    tracer_provider: TracerProvider | None = None

    @property
    def readers(self) -> tuple[MetricReader, ...]:
        return (self.reader,) if self.reader is not None else ()

    def build_tracer(self, version: str) -> BuildTracer | None:
        """Return the tracer for builds, or None when traces go nowhere."""
        if self.tracer_provider is None:
            return None
        return JobTracer(self.tracer_provider, version)


def start_otlp(targets: OtlpTargets, resource: Resource) -> OtlpPipeline:
    """Create the reader and the tracer provider that `targets` asks for; nothing is sent yet."""
    pipeline = OtlpPipeline(targets, resource)
    if targets.metrics is None and targets.traces is None:
        return pipeline
    # The exporters (requests, protobuf) cost ~150 ms and several MB: only load them when used.
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from alloy_runner.telemetry.otlp.exporters import GuardedMetricExporter, GuardedSpanExporter

    if targets.metrics is not None:
        health = ExportHealth("metrics", targets.metrics.endpoint)
        health.install()
        interval = targets.interval * 1000 if targets.interval is not None else None
        pipeline.reader = PeriodicExportingMetricReader(
            GuardedMetricExporter(targets.metrics, health), export_interval_millis=interval
        )
    if targets.traces is not None:
        health = ExportHealth("traces", targets.traces.endpoint)
        health.install()
        provider = TracerProvider(resource=resource, shutdown_on_exit=False)
        provider.add_span_processor(
            BatchSpanProcessor(
                GuardedSpanExporter(targets.traces, health),
                max_queue_size=MAX_QUEUED_SPANS,
                max_export_batch_size=MAX_SPANS_PER_EXPORT,
            )
        )
        pipeline.tracer_provider = provider
    return pipeline
