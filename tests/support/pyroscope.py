"""A stand-in for Pyroscope on loopback: it speaks the push API and decodes what it gets.

`PyroscopeReceiver` accepts `POST /push.v1.PusherService/Push` (the connect
protocol with a binary protobuf body, gzip-encoded as pyroscope-io sends
it), decodes the `PushRequest` with `tests/support/proto/push_pb2.py` and
each raw profile with the runner's own pprof schema. With `status=500` it
answers every push with an error; `SilentListener` accepts connections and
never answers.
"""

from __future__ import annotations

import gzip
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from alloy_runner.telemetry.proto import profile_pb2
from tests.support.proto import push_pb2

PUSH_PATH = "/push.v1.PusherService/Push"


def decode_pprof(raw: bytes) -> Any:
    """Parse a pprof Profile, gunzipping it first if it is gzipped."""
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    return profile_pb2.Profile.FromString(raw)


def function_weights(profile: Any) -> Counter[str]:
    """Return the total of the first sample value per function name anywhere on a stack."""
    strings = profile.string_table
    names = {f.id: strings[f.name] for f in profile.function}
    frames = {loc.id: [names[line.function_id] for line in loc.line] for loc in profile.location}
    weights: Counter[str] = Counter()
    for sample in profile.sample:
        on_stack = {name for lid in sample.location_id for name in frames[lid]}
        for name in on_stack:
            weights[name] += sample.value[0]
    return weights


def sample_labels(profile: Any) -> Counter[tuple[str, str]]:
    """Return how many samples carry each (label, value) pair."""
    strings = profile.string_table
    counts: Counter[tuple[str, str]] = Counter()
    for sample in profile.sample:
        for label in sample.label:
            counts[(strings[label.key], strings[label.str])] += 1
    return counts


@dataclass
class Series:
    """One series of one push: its labels and its decoded profiles."""

    labels: dict[str, str]
    profiles: list[Any] = field(default_factory=list)


@dataclass
class Push:
    """One request the receiver answered (`series` is empty unless it was to PUSH_PATH)."""

    path: str
    headers: dict[str, str]
    series: list[Series]


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        headers = {k.lower(): v for k, v in self.headers.items()}
        if headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        receiver = self.server.receiver
        series = []
        if self.path == PUSH_PATH:
            request = push_pb2.PushRequest.FromString(body)
            series = [
                Series(
                    {p.name: p.value for p in s.labels},
                    [decode_pprof(sample.raw_profile) for sample in s.samples],
                )
                for s in request.series
            ]
        receiver.record(Push(self.path, headers, series))
        status = receiver.status if self.path == PUSH_PATH else 404
        reply = b"" if status == 200 else b"receiver says no\n"
        self.send_response(status)
        self.send_header("Content-Type", "application/proto" if status == 200 else "text/plain")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, receiver: PyroscopeReceiver) -> None:
        self.receiver = receiver
        super().__init__(("127.0.0.1", 0), _Handler)


class PyroscopeReceiver:
    """A push API server on 127.0.0.1 answering `status` to every push it decodes."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self._pushes: list[Push] = []
        self._lock = threading.Lock()
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )

    @property
    def url(self) -> str:
        """Return the base URL to give the runner."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def record(self, push: Push) -> None:
        with self._lock:
            self._pushes.append(push)

    @property
    def pushes(self) -> list[Push]:
        """Return every push received so far."""
        with self._lock:
            return list(self._pushes)

    def series(self) -> Iterator[Series]:
        """Yield every series of every push so far."""
        for push in self.pushes:
            yield from push.series

    def __enter__(self) -> PyroscopeReceiver:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:  # fmt: skip
        self._server.shutdown()
        self._server.server_close()


class SilentListener:
    """A TCP listener on 127.0.0.1 that accepts every connection and never answers."""

    def __init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0), backlog=64)
        self._conns: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self.accepted = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._sock.getsockname()[1]}"

    def _accept(self) -> None:
        self._sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._conns.append(conn)
            self.accepted += 1

    def __enter__(self) -> SilentListener:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:  # fmt: skip
        self._stop.set()
        self._thread.join(5)
        for conn in self._conns:
            conn.close()
        self._sock.close()
