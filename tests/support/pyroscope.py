"""A stand-in for Pyroscope on loopback: it speaks the push API and decodes what it gets.

`PyroscopeReceiver` accepts `POST /push.v1.PusherService/Push` (the connect
protocol with a binary protobuf body, gzip-encoded as pyroscope-io sends
it), decodes the `PushRequest` with `tests/support/proto/push_pb2.py` and
each raw profile with the runner's own pprof schema. With `status=500` it
answers every push with an error. A Pyroscope that accepts connections and
never answers is `tests.support.loopback.SilentListener`.
"""

from __future__ import annotations

import gzip
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from alloy_runner.telemetry.profiling.proto import profile_pb2
from tests.support.loopback import LoopbackHTTPServer, QuietHandler
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


class _Handler(QuietHandler):
    receiver: PyroscopeReceiver

    def do_POST(self) -> None:
        body = self.read_content()
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
        self.receiver.record(Push(self.path, self.lower_headers(), series))
        status = self.receiver.status if self.path == PUSH_PATH else 404
        reply = b"" if status == 200 else b"receiver says no\n"
        content_type = "application/proto" if status == 200 else "text/plain"
        self.respond(status, reply, {"Content-Type": content_type})


class PyroscopeReceiver(LoopbackHTTPServer):
    """A push API server on 127.0.0.1 answering `status` to every push it decodes."""

    def __init__(self, status: int = 200) -> None:
        super().__init__(type("Handler", (_Handler,), {"receiver": self}))
        self.status = status
        self._pushes: list[Push] = []
        self._lock = threading.Lock()

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
