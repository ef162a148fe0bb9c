"""OTLP/HTTP on loopback for tests: a receiver that decodes what it is sent.

The receiver stands where the OpenTelemetry Collector's `otlp` receiver would:
it accepts `POST /v1/metrics` and `POST /v1/traces` with protobuf bodies and
decodes them with `opentelemetry-proto`, the collector's own message types.
A collector that never answers is `tests.support.loopback.SilentListener`.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
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

from tests.support.loopback import LoopbackHTTPServer, QuietHandler


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


class _Handler(QuietHandler):
    receiver: OtlpReceiver

    def do_POST(self) -> None:
        body = self.read_content()
        if self.path == "/v1/metrics":
            request: Any = ExportMetricsServiceRequest.FromString(body)
            reply = ExportMetricsServiceResponse().SerializeToString()
        elif self.path == "/v1/traces":
            request = ExportTraceServiceRequest.FromString(body)
            reply = ExportTraceServiceResponse().SerializeToString()
        else:
            self.respond(404)
            return
        self.receiver.record(self.path, Received(time.time(), self.lower_headers(), request))
        self.respond(200, reply, {"Content-Type": "application/x-protobuf"})


class ReceivedStore:
    """The export requests a receiver decoded, by signal path; shared by HTTP and gRPC."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[str, list[Received]] = {"/v1/metrics": [], "/v1/traces": []}

    def record(self, path: str, received: Received) -> None:
        with self._lock:
            self._requests[path].append(received)

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
        out: list[tuple[dict[str, Any], Span]] = []
        for received in self.trace_requests():
            for resource_spans in received.message.resource_spans:
                resource = attributes(resource_spans.resource.attributes)
                for scope_spans in resource_spans.scope_spans:
                    out.extend((resource, span) for span in scope_spans.spans)
        return out

    def metric_names(self) -> set[str]:
        """Return the names of every metric received so far."""
        return {name for r in self.metric_requests() for name in metrics_of(r.message)}


class OtlpReceiver(ReceivedStore, LoopbackHTTPServer):
    """An OTLP/HTTP receiver on 127.0.0.1 keeping every request it decodes; use it with `with`.

    With `tls` (a server context, which may require client certificates) it speaks HTTPS.
    """

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        ReceivedStore.__init__(self)
        LoopbackHTTPServer.__init__(self, type("Handler", (_Handler,), {"receiver": self}), tls=tls)

    @property
    def endpoint(self) -> str:
        """Return the base URL to give as OTEL_EXPORTER_OTLP_ENDPOINT or `endpoint`."""
        assert self.port, "not started"
        return self.url


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
