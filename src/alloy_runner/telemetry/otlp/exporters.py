"""The OTLP/HTTP exporters, guarded: they never raise and report each export to `ExportHealth`.

Imported only when OTLP is configured: requests and the protobuf exporters are
the heaviest imports of the process.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import requests
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics.export import MetricExportResult
from opentelemetry.sdk.trace.export import SpanExportResult

from alloy_runner.telemetry.otlp.names import otlp_named

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics.export import MetricsData
    from opentelemetry.sdk.trace import ReadableSpan

    from alloy_runner.telemetry.otlp.targets import ExportHealth, Signal


def http_options(signal: Signal) -> dict[str, Any]:
    """Return the OTLP/HTTP exporter's arguments for `signal`, TLS files and compression too."""
    return {
        "endpoint": signal.endpoint,
        "headers": signal.headers,
        "timeout": signal.timeout,
        "certificate_file": signal.tls.certificate,
        "client_certificate_file": signal.tls.client_certificate,
        "client_key_file": signal.tls.client_key,
        "compression": Compression(signal.compression) if signal.compression else None,
    }


def reason(error: BaseException) -> str:
    """Say in a few words why a request failed (requests' messages run to several lines)."""
    text = str(error)
    if match := re.search(r"\[Errno -?\d+\] [^'\")]+", text):
        return match.group(0)
    if isinstance(error, requests.Timeout):
        return "no answer in time"
    return f"{type(error).__name__}: {text[:200]}"


class WatchedSession(requests.Session):
    """A requests Session that remembers why its last request raised, for `ExportHealth`."""

    def __init__(self) -> None:
        super().__init__()
        self._error: BaseException | None = None

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:
        # requests lets REQUESTS_CA_BUNDLE win over a session's own CA unless the request
        # names one: OTEL_EXPORTER_OTLP_CERTIFICATE (the session's) must win.
        if self.verify is not True:
            kwargs.setdefault("verify", self.verify)
        try:
            return super().request(*args, **kwargs)
        except Exception as exc:
            self._error = exc
            raise

    def take_error(self) -> BaseException | None:
        """Return the error of the last failed request once, then forget it."""
        error, self._error = self._error, None
        return error


class GuardedMetricExporter(OTLPMetricExporter):
    """An OTLP metric exporter that never raises and reports to its `ExportHealth`."""

    def __init__(self, signal: Signal, health: ExportHealth) -> None:
        self._session = WatchedSession()
        super().__init__(
            session=self._session,
            **http_options(signal),
        )
        self.health = health

    def export(
        self, metrics_data: MetricsData, timeout_millis: float | None = 10_000, **kwargs: object
    ) -> MetricExportResult:
        try:
            result = super().export(otlp_named(metrics_data), timeout_millis, **kwargs)
        except Exception as exc:  # a sink failing must not reach the reader's thread
            self.health.exported(False, exc)
            return MetricExportResult.FAILURE
        ok = result is MetricExportResult.SUCCESS
        self.health.exported(ok, None if ok else self._session.take_error())
        return result

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: object) -> None:
        try:
            super().shutdown(timeout_millis, **kwargs)
        finally:
            self.health.uninstall()


class GuardedSpanExporter(OTLPSpanExporter):
    """An OTLP span exporter that never raises and reports to its `ExportHealth`."""

    def __init__(self, signal: Signal, health: ExportHealth) -> None:
        self._session = WatchedSession()
        super().__init__(
            session=self._session,
            **http_options(signal),
        )
        self.health = health

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            result = super().export(spans)
        except Exception as exc:
            self.health.exported(False, exc)
            return SpanExportResult.FAILURE
        ok = result is SpanExportResult.SUCCESS
        self.health.exported(ok, None if ok else self._session.take_error())
        return result

    def shutdown(self) -> None:
        try:
            super().shutdown()  # type: ignore[no-untyped-call]
        finally:
            self.health.uninstall()
