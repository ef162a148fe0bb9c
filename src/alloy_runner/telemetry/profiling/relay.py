"""A loopback relay between pyroscope-io and Pyroscope, so that every upload's fate is seen.

pyroscope-io uploads from its Rust side and reports a failed upload only on
stderr, through its own logger, and its shutdown waits for pending uploads
(10 s each against a server that accepts and never answers). So the agent
pushes to this relay on 127.0.0.1 instead, which answers at once, keeps the
last few profiles in a bounded queue, and sends them on from one thread with
a timeout. A failure is logged once (counted in `ci_runner_errors_total`) and
again only after uploads have worked in between; shutdown spends a deadline.

Only the agent can push here: every request must carry a random token that
the relay gave the agent as an HTTP header, and that is not sent on.
"""

from __future__ import annotations

import http.client
import logging
import secrets
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

TOKEN_HEADER = "X-Alloy-Relay-Token"  # noqa: S105 (a header name, not a secret)
UPLOAD_TIMEOUT = 10.0  # seconds one upload to Pyroscope may take (pyroscope-io's own bound)
QUEUE_SIZE = 4  # profiles kept while Pyroscope is slow; the oldest goes first
MAX_BODY = 64 * 1024 * 1024
# Not sent on: they describe the hop to the relay, not the request.
_HOP_HEADERS = frozenset(
    {
        "host",
        "connection",
        "keep-alive",
        "content-length",
        "transfer-encoding",
        "te",
        "proxy-connection",
        "upgrade",
        TOKEN_HEADER.lower(),
    }
)


@dataclass(frozen=True)
class Upload:
    """One request of the agent, as received."""

    path: str
    headers: tuple[tuple[str, str], ...]
    body: bytes


@dataclass(frozen=True)
class Outcome:
    """What Pyroscope made of one upload: `error` is empty when it took it."""

    status: int | None
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error


Sender = Callable[[Upload, float], Outcome]
"""Send one upload with a timeout in seconds; never raise."""


def redact(url: str) -> str:
    """Return `url` without user:password, for logs and pages."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return parts._replace(netloc=netloc).geturl()


class HttpSender:
    """Send uploads to `upstream` (an http:// or https:// base URL) with http.client."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {redact(upstream)!r}")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._prefix = parts.path.rstrip("/")
        self._context = ssl.create_default_context() if self._https else None

    def __call__(self, upload: Upload, timeout: float) -> Outcome:
        conn: http.client.HTTPConnection
        if self._context is not None:
            conn = http.client.HTTPSConnection(
                self._host, self._port, timeout=timeout, context=self._context
            )
        else:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=timeout)
        try:
            conn.request("POST", self._prefix + upload.path, upload.body, dict(upload.headers))
            response = conn.getresponse()
            body = response.read(512)
        except (OSError, http.client.HTTPException) as exc:
            return Outcome(None, str(exc) or type(exc).__name__)
        finally:
            conn.close()
        if 200 <= response.status < 300:
            return Outcome(response.status)
        detail = body.decode("utf-8", "replace").strip().splitlines()
        return Outcome(
            response.status,
            f"HTTP {response.status}" + (f": {detail[0][:200]}" if detail else ""),
        )


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, relay: ProfileRelay) -> None:
        self.relay = relay
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("profiling relay: error serving %s", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    timeout = 30.0

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("profiling relay: " + format, *args)

    def do_POST(self) -> None:
        relay = self.server.relay
        if not secrets.compare_digest(self.headers.get(TOKEN_HEADER, ""), relay.token):
            self._answer(HTTPStatus.FORBIDDEN)
            return
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._answer(HTTPStatus.LENGTH_REQUIRED)
            return
        if not 0 <= length <= MAX_BODY:
            self._answer(HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
            return
        body = self.rfile.read(length)
        headers = tuple((k, v) for k, v in self.headers.items() if k.lower() not in _HOP_HEADERS)
        relay.enqueue(Upload(self.path, headers, body))
        # An empty PushResponse: the agent's upload is done as far as it is concerned.
        self._answer(HTTPStatus.OK, "application/proto")

    def _answer(self, status: HTTPStatus, content_type: str = "text/plain") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", "0")
        self.end_headers()


class ProfileRelay:
    """Take the agent's uploads on 127.0.0.1 and send them on to `upstream`, one at a time."""

    def __init__(
        self,
        upstream: str,
        *,
        send: Sender | None = None,
        timeout: float = UPLOAD_TIMEOUT,
        queue_size: int = QUEUE_SIZE,
    ) -> None:
        self.upstream = redact(upstream)
        self.token = secrets.token_urlsafe(24)
        self._send = send if send is not None else HttpSender(upstream)
        self._timeout = timeout
        self._queue: deque[Upload] = deque(maxlen=queue_size)
        self._cond = threading.Condition()
        self._closing_by: float | None = None  # monotonic deadline once shutting down
        self._server: _Server | None = None
        self._serving: threading.Thread | None = None
        self._forwarder: threading.Thread | None = None
        self._failing = False
        self.sent = 0
        self.failed = 0
        self.dropped = 0

    @property
    def url(self) -> str:
        """Return the base URL the agent pushes to."""
        if self._server is None:
            raise RuntimeError("relay not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> str:
        """Listen on an ephemeral loopback port and start forwarding; return `url`."""
        self._server = _Server(self)
        self._serving = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="profiling-relay",
            daemon=True,
        )
        self._forwarder = threading.Thread(
            target=self._forward, name="profiling-upload", daemon=True
        )
        self._serving.start()
        self._forwarder.start()
        return self.url

    def enqueue(self, upload: Upload) -> None:
        """Keep `upload` for the forwarder; when the queue is full the oldest is dropped."""
        with self._cond:
            if self._closing_by is not None and time.monotonic() >= self._closing_by:
                self.dropped += 1
                return
            if len(self._queue) == self._queue.maxlen:
                self.dropped += 1
                log.debug("profiling: Pyroscope is slow; dropped the oldest waiting profile")
            self._queue.append(upload)
            self._cond.notify_all()

    def _next(self) -> tuple[Upload, float] | None:
        """Wait for an upload; return it with its timeout, or None when it is time to stop."""
        with self._cond:
            while True:
                closing_by = self._closing_by
                if closing_by is not None:
                    remaining = closing_by - time.monotonic()
                    if remaining <= 0 or not self._queue:
                        return None
                    return self._queue.popleft(), min(self._timeout, remaining)
                if self._queue:
                    return self._queue.popleft(), self._timeout
                self._cond.wait()

    def _forward(self) -> None:
        while (item := self._next()) is not None:
            upload, timeout = item
            try:
                outcome = self._send(upload, timeout)
            except Exception as exc:  # a sender must not raise; if it does, the loop goes on
                outcome = Outcome(None, f"{type(exc).__name__}: {exc}")
            self._record(outcome)

    def _record(self, outcome: Outcome) -> None:
        if outcome.ok:
            self.sent += 1
            if self._failing:
                self._failing = False
                log.info(
                    "profiling: uploads to %s work again (%d failed meanwhile)",
                    self.upstream,
                    self.failed,
                )
            elif self.sent == 1:
                log.info("profiling: first profile delivered to %s", self.upstream)
            return
        self.failed += 1
        if self._failing:
            log.debug("profiling: upload to %s failed again: %s", self.upstream, outcome.error)
            return
        self._failing = True
        log.warning(
            "profiling: upload to %s failed: %s; profiles are dropped until it answers again "
            "(further failures are logged at debug level)",
            self.upstream,
            outcome.error,
        )

    def shutdown(self, timeout: float) -> None:
        """Stop taking uploads, send what is queued within `timeout` seconds, then stop."""
        deadline = time.monotonic() + timeout
        server, self._server = self._server, None
        if server is None:
            return
        with self._cond:
            self._closing_by = deadline
            self._cond.notify_all()
        stopper = threading.Thread(target=server.shutdown, daemon=True)
        stopper.start()
        stopper.join(max(0.0, deadline - time.monotonic()))
        server.server_close()
        if self._forwarder is not None:
            self._forwarder.join(max(0.0, deadline - time.monotonic()))
            if self._forwarder.is_alive():
                log.info(
                    "profiling: stopped waiting for an upload to %s at the shutdown deadline",
                    self.upstream,
                )
        with self._cond:
            left = len(self._queue)
            self._queue.clear()
        if left:
            self.dropped += left
            log.info("profiling: %d profile(s) not delivered before shutdown", left)
