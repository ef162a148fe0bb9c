"""OTLP/HTTP on loopback for tests: a receiver that decodes what it is sent, and a silent one.

The receiver stands where the OpenTelemetry Collector's `otlp` receiver would:
it accepts `POST /v1/metrics` and `POST /v1/traces` with protobuf bodies and
decodes them with `opentelemetry-proto`, the collector's own message types.
"""

from __future__ import annotations

import gzip
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric
from opentelemetry.proto.trace.v1.trace_pb2 import Span


def attribute_value(value: AnyValue) -> Any:
    """Return the Python value of an OTLP AnyValue."""
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


def attributes(pairs: Any) -> dict[str, Any]:
    """Return OTLP key-values (a repeated KeyValue field) as a dict."""
    out: dict[str, Any] = {}
    for pair in pairs:
        assert isinstance(pair, KeyValue)
        out[pair.key] = attribute_value(pair.value)
    return out


@dataclass(frozen=True)
class Received:
    """One export request as it arrived: when, with which headers, decoded."""

    at: float
    headers: dict[str, str]
    message: Any


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.headers.get("Content-Encoding", "") == "gzip":
            body = gzip.decompress(body)
        headers = {k.lower(): v for k, v in self.headers.items()}
        if self.path == "/v1/metrics":
            request: Any = ExportMetricsServiceRequest.FromString(body)
            reply = ExportMetricsServiceResponse().SerializeToString()
        elif self.path == "/v1/traces":
            request = ExportTraceServiceRequest.FromString(body)
            reply = ExportTraceServiceResponse().SerializeToString()
        else:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.server.owner.record(self.path, Received(time.time(), headers, request))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, owner: OtlpReceiver) -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", 0), _Handler)


class OtlpReceiver:
    """An OTLP/HTTP receiver on 127.0.0.1 keeping every request it decodes; use it with `with`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[str, list[Received]] = {"/v1/metrics": [], "/v1/traces": []}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def record(self, path: str, received: Received) -> None:
        with self._lock:
            self._requests[path].append(received)

    @property
    def endpoint(self) -> str:
        """Return the base URL to give as OTEL_EXPORTER_OTLP_ENDPOINT or `endpoint`."""
        assert self._server is not None, "not started"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def metric_requests(self) -> list[Received]:
        """Return the metrics export requests received so far, oldest first."""
        with self._lock:
            return list(self._requests["/v1/metrics"])

    def trace_requests(self) -> list[Received]:
        """Return the trace export requests received so far, oldest first."""
        with self._lock:
            return list(self._requests["/v1/traces"])

    def spans(self) -> list[tuple[dict[str, Any], Span]]:
        """Return every span received, with its resource's attributes."""
        out = []
        for received in self.trace_requests():
            for resource_spans in received.message.resource_spans:
                resource = attributes(resource_spans.resource.attributes)
                for scope_spans in resource_spans.scope_spans:
                    out.extend((resource, span) for span in scope_spans.spans)
        return out

    def start(self) -> OtlpReceiver:
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; safe to call twice."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    def __enter__(self) -> OtlpReceiver:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def metrics_of(request: ExportMetricsServiceRequest) -> dict[str, Metric]:
    """Return the metrics of one export request by name."""
    return {
        metric.name: metric
        for resource_metrics in request.resource_metrics
        for scope_metrics in resource_metrics.scope_metrics
        for metric in scope_metrics.metrics
    }


def data_points(metric: Metric) -> Iterator[Any]:
    """Yield the data points of a metric, whatever its type."""
    kind = metric.WhichOneof("data")
    assert kind is not None, metric
    yield from getattr(metric, kind).data_points


class SilentCollector:
    """A listener on 127.0.0.1 that accepts connections and never answers: a stuck collector."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._conns: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        host, port = self._sock.getsockname()[:2]
        return f"http://{host}:{port}"

    def start(self) -> SilentCollector:
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._sock.settimeout(0.1)
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()
        return self

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            self._conns.append(conn)  # held open, never read, never answered

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
        for conn in self._conns:
            conn.close()
        self._sock.close()

    def __enter__(self) -> SilentCollector:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
