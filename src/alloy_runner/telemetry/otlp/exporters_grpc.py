"""The OTLP/gRPC exporters (OTEL_EXPORTER_OTLP_PROTOCOL=grpc), guarded as the HTTP ones are.

Imported only when a signal goes over gRPC: grpcio is a large import.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import grpc
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics.export import MetricExportResult
from opentelemetry.sdk.trace.export import SpanExportResult

from alloy_runner.telemetry.otlp.names import otlp_named

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics.export import MetricsData
    from opentelemetry.sdk.trace import ReadableSpan

    from alloy_runner.telemetry.otlp.targets import ExportHealth, Signal


def _read(path: str | None) -> bytes | None:
    return Path(path).read_bytes() if path is not None else None


def grpc_options(signal: Signal) -> dict[str, Any]:
    """Return the OTLP/gRPC exporter's arguments: http:// is plaintext, https:// is TLS,
    and an endpoint without a scheme is TLS unless OTEL_EXPORTER_OTLP_INSECURE=true."""
    scheme = urlsplit(signal.endpoint).scheme if "://" in signal.endpoint else ""
    insecure = scheme == "http" or (scheme == "" and signal.tls.insecure)
    credentials = None
    if not insecure:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=_read(signal.tls.certificate),
            private_key=_read(signal.tls.client_key),
            certificate_chain=_read(signal.tls.client_certificate),
        )
    compression = None
    if signal.compression is not None:
        compression = (
            grpc.Compression.Gzip
            if signal.compression == "gzip"
            else (grpc.Compression.NoCompression)
        )
    return {
        "endpoint": signal.endpoint,
        "insecure": insecure,
        "credentials": credentials,
        "headers": signal.headers,
        "timeout": signal.timeout,
        "compression": compression,
    }


class GuardedGrpcMetricExporter(OTLPMetricExporter):
    """An OTLP/gRPC metric exporter that never raises and reports to its `ExportHealth`."""

    def __init__(self, signal: Signal, health: ExportHealth) -> None:
        super().__init__(**grpc_options(signal))
        self.health = health

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        try:
            result = super().export(otlp_named(metrics_data), timeout_millis, **kwargs)
        except Exception as exc:  # a sink failing must not reach the reader's thread
            self.health.exported(False, exc)
            return MetricExportResult.FAILURE
        self.health.exported(result is MetricExportResult.SUCCESS)
        return result

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        try:
            super().shutdown(timeout_millis, **kwargs)
        finally:
            self.health.uninstall()


class GuardedGrpcSpanExporter(OTLPSpanExporter):
    """An OTLP/gRPC span exporter that never raises and reports to its `ExportHealth`."""

    def __init__(self, signal: Signal, health: ExportHealth) -> None:
        super().__init__(**grpc_options(signal))
        self.health = health

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            result = super().export(spans)
        except Exception as exc:
            self.health.exported(False, exc)
            return SpanExportResult.FAILURE
        self.health.exported(result is SpanExportResult.SUCCESS)
        return result

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        try:
            super().shutdown(timeout_millis, **kwargs)
        finally:
            self.health.uninstall()
