"""Where OTLP goes (the file and the OTEL_* variables, resolved once), and sink health.

The readers and span processors that ship it are made in `otlp.pipeline`.
A collector that is down or slow costs a background thread some waiting and,
for spans, a bounded queue: builds never wait on it, and its failure is
logged once per outage.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from alloy_runner.config.address import is_http_url
from alloy_runner.exceptions import ConfigError
from alloy_runner.telemetry.otlp import settings
from alloy_runner.telemetry.otlp.env_lists import HEADER_VARIABLES, bsp_milliseconds, parse_pairs

if TYPE_CHECKING:
    from alloy_runner.config.model import OtlpConfig

log = logging.getLogger(__name__)

ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"
HEADERS = "OTEL_EXPORTER_OTLP_HEADERS"
MAX_QUEUED_SPANS = 2048  # spans held while the collector is away; older ones are dropped first
MAX_SPANS_PER_EXPORT = 512

# The loggers the SDK complains through, once per export; `ExportHealth` speaks for them.
_GRPC_LOGGER = "opentelemetry.exporter.otlp.proto.grpc.exporter"
_LIBRARY_LOGGERS = {
    "metrics": ("opentelemetry.exporter.otlp.proto.http.metric_exporter", _GRPC_LOGGER),
    "traces": (
        "opentelemetry.exporter.otlp.proto.http.trace_exporter",
        _GRPC_LOGGER,
        "opentelemetry.sdk._shared_internal",  # the batch span processor: "Queue full, dropping"
    ),
}


@dataclass(frozen=True)
class Signal:
    """Where one signal (metrics or traces) goes, resolved from the file and the environment."""

    name: str
    endpoint: str
    headers: dict[str, str] = field(default_factory=dict)
    timeout: float | None = None  # seconds; None: 10 s
    protocol: str = settings.HTTP_PROTOBUF
    tls: settings.Tls = field(default_factory=settings.Tls)
    compression: str | None = None  # None: none


@dataclass(frozen=True)
class OtlpTargets:
    """What to push: `metrics` and `traces` are None when that signal has no OTLP exporter."""

    metrics: Signal | None
    traces: Signal | None
    interval: float | None = None  # seconds; None: 60 s
    console_metrics: bool = False  # OTEL_METRICS_EXPORTER lists console
    console_traces: bool = False
    export_timeout: float | None = None  # OTEL_METRIC_EXPORT_TIMEOUT in seconds; None: 30 s
    exemplar_filter: str = "trace_based"
    propagators: tuple[str, ...] = ("tracecontext", "baggage")
    disabled: bool = False  # OTEL_SDK_DISABLED=true
    schedule_delay_ms: int = 5000  # OTEL_BSP_SCHEDULE_DELAY
    span_export_timeout_ms: int = 30000  # OTEL_BSP_EXPORT_TIMEOUT
    warnings: tuple[str, ...] = ()  # what the variables held that the runner ignores

    @property
    def enabled(self) -> bool:
        return self.metrics is not None or self.traces is not None or self.console

    @property
    def console(self) -> bool:
        return self.console_metrics or self.console_traces

    @property
    def tracing(self) -> bool:
        """Tell whether job spans are made at all (some exporter takes them)."""
        return self.traces is not None or self.console_traces

    def summary(self) -> str:
        """Describe the targets in one log line."""
        if self.disabled:
            return (
                "OTEL_SDK_DISABLED=true: no OTLP export, no spans, no profile-span links; "
                "/metrics is served as usual (it is this runner's own interface)"
            )
        parts = []
        if self.metrics is not None:
            every = f" every {self.interval:g}s" if self.interval is not None else ""
            parts.append(f"metrics to {self.metrics.endpoint} ({self.metrics.protocol}){every}")
        if self.traces is not None:
            parts.append(f"traces to {self.traces.endpoint} ({self.traces.protocol})")
        if self.console:
            what = [
                s
                for s, on in (("metrics", self.console_metrics), ("traces", self.console_traces))
                if on
            ]
            parts.append(f"{' and '.join(what)} to the console (stdout)")
        return "OTLP: pushing " + " and ".join(parts) if parts else "OTLP: off"


def _url(value: str, where: str, proto: str) -> str:
    value = value.strip()
    if value.startswith(("http://", "https://")):
        if not is_http_url(value):
            raise ConfigError(f"{where}: {value!r} is not a URL that parses")
        return value
    if proto == settings.GRPC and "://" not in value and value:  # host:port; TLS unless insecure
        return value
    raise ConfigError(f"{where}: expected an http:// or https:// URL, got {value!r}")


def _endpoint(
    name: str, config: OtlpConfig, env: Mapping[str, str], proto: str, asked: bool
) -> str | None:
    """A signal's own variable as given, then the shared one, then the file, then the default."""
    own_name = f"OTEL_EXPORTER_OTLP_{name.upper()}_ENDPOINT"
    own = env.get(own_name, "").strip()
    if own:
        return _url(own, own_name, proto)
    shared, where = env.get(ENDPOINT, "").strip(), ENDPOINT
    if not shared:
        shared, where = config.endpoint, "telemetry.otlp.endpoint"
    if not shared:
        if not asked:  # no endpoint anywhere and no exporter named: OTLP stays off
            return None
        shared = settings.DEFAULT_ENDPOINTS[proto]
    base = _url(shared, where, proto)
    # Over HTTP the base gets the signal's path; over gRPC the service names the signal.
    return base if proto == settings.GRPC else base.rstrip("/") + f"/v1/{name}"


def _signal(name: str, config: OtlpConfig, env: Mapping[str, str], asked: bool) -> Signal | None:
    proto = settings.protocol(env, name)
    endpoint = _endpoint(name, config, env, proto, asked)
    if endpoint is None:
        return None
    headers = dict(config.headers)
    for variable in (HEADERS, f"OTEL_EXPORTER_OTLP_{name.upper()}_HEADERS"):
        headers.update(parse_pairs(variable, env.get(variable, ""), header_names=True)[0])
    timeout = settings.signal_timeout(env, name)
    return Signal(
        name,
        endpoint,
        headers,
        config.timeout if timeout is None else timeout,
        proto,
        settings.tls(env, name),
        settings.compression(env, name, proto),
    )


def resolve(config: OtlpConfig, env: Mapping[str, str]) -> OtlpTargets:
    """Combine `[telemetry.otlp]` with the standard OTEL_* variables, which win where set."""
    if settings.sdk_disabled(env):
        return OtlpTargets(None, None, disabled=True)
    chosen = {s: settings.exporters(env, s) for s in ("metrics", "traces")}
    signals = {
        s: _signal(s, config, env, asked=names is not None)
        if names is None or "otlp" in names
        else None
        for s, names in chosen.items()
    }
    interval = settings.milliseconds(env, settings.EXPORT_INTERVAL)
    if interval == 0:
        raise ConfigError(f"{settings.EXPORT_INTERVAL}: expected a positive number of milliseconds")
    delay, delay_warning = bsp_milliseconds(env, "OTEL_BSP_SCHEDULE_DELAY")
    timeout, timeout_warning = bsp_milliseconds(env, "OTEL_BSP_EXPORT_TIMEOUT")
    header_warnings = [
        parse_pairs(variable, env.get(variable, ""), header_names=True)[1]
        for variable in HEADER_VARIABLES
    ]
    return OtlpTargets(
        metrics=signals["metrics"],
        traces=signals["traces"],
        interval=config.interval if interval is None else interval,
        console_metrics="console" in (chosen["metrics"] or ()),
        console_traces="console" in (chosen["traces"] or ()),
        export_timeout=settings.milliseconds(env, settings.EXPORT_TIMEOUT),
        exemplar_filter=settings.exemplar_filter(env),
        propagators=settings.propagator_names(env),
        schedule_delay_ms=delay,
        span_export_timeout_ms=timeout,
        warnings=tuple(
            w for w in (*header_warnings, delay_warning, timeout_warning) if w is not None
        ),
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
