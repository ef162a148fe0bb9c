"""OTLP/gRPC on loopback for tests: the collector's metrics and trace services, decoding.

A grpcio server implementing `opentelemetry.proto.collector.{metrics,trace}.v1`
as the OpenTelemetry Collector's `otlp` receiver does on port 4317. What it
receives is kept as `Received` by the same paths as the HTTP receiver
(`/v1/metrics`, `/v1/traces`), so tests read both alike. With `tls` (key and
certificate PEM, and optionally a CA whose client certificates it requires)
it serves TLS.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from tests.support.loopback import HOST
from tests.support.otlp import Received, ReceivedStore
from tests.support.service import Service


@dataclass(frozen=True)
class GrpcTls:
    """The server's certificate and key, and the CA its clients must be signed by (None: any)."""

    cert: Path
    key: Path
    client_ca: Path | None = None


def _metadata(context: grpc.ServicerContext) -> dict[str, str]:
    return {k.lower(): str(v) for k, v in context.invocation_metadata()}


class _Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, store: ReceivedStore) -> None:
        self.store = store

    def Export(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.store.record("/v1/metrics", Received(time.time(), _metadata(context), request))
        return ExportMetricsServiceResponse()


class _Traces(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, store: ReceivedStore) -> None:
        self.store = store

    def Export(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.store.record("/v1/traces", Received(time.time(), _metadata(context), request))
        return ExportTraceServiceResponse()


class GrpcOtlpReceiver(ReceivedStore, Service):
    """An OTLP/gRPC receiver on 127.0.0.1 at an ephemeral port; use it with `with`."""

    def __init__(self, tls: GrpcTls | None = None) -> None:
        super().__init__()
        self._tls = tls
        self._server: grpc.Server | None = None
        self.port = 0

    @property
    def endpoint(self) -> str:
        """Return the endpoint to give as OTEL_EXPORTER_OTLP_ENDPOINT (http:// or https://)."""
        assert self.port, "not started"
        return f"{'https' if self._tls else 'http'}://{HOST}:{self.port}"

    def start(self) -> Self:
        server = grpc.server(ThreadPoolExecutor(max_workers=4))
        # The generated gRPC modules carry no annotations.
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(_Metrics(self), server)  # type: ignore[no-untyped-call]
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_Traces(self), server)  # type: ignore[no-untyped-call]
        if self._tls is None:
            self.port = server.add_insecure_port(f"{HOST}:0")
        else:
            tls = self._tls
            credentials = grpc.ssl_server_credentials(
                [(tls.key.read_bytes(), tls.cert.read_bytes())],
                root_certificates=tls.client_ca.read_bytes() if tls.client_ca else None,
                require_client_auth=tls.client_ca is not None,
            )
            self.port = server.add_secure_port(f"{HOST}:0", credentials)
        server.start()
        self._server = server
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.stop(grace=None).wait(5)
