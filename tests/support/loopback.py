"""Servers on 127.0.0.1 for tests: HTTP served from a background thread, and a listener
that never answers. Both take an ephemeral port and are always stopped (`with`)."""

from __future__ import annotations

import gzip
import socket
import ssl
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from tests.support.service import Service

HOST = "127.0.0.1"


class QuietHandler(BaseHTTPRequestHandler):
    """An HTTP/1.1 request handler that logs nothing and reads and sends whole bodies."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # a test's output is no place for an access log

    def lower_headers(self) -> dict[str, str]:
        """Return the request's headers with lower-case names."""
        return {k.lower(): v for k, v in self.headers.items()}

    def read_body(self) -> bytes:
        """Read the whole request body as sent, sized by Content-Length or chunked."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def read_content(self) -> bytes:
        """Read the whole request body and undo its `Content-Encoding: gzip`, if it has one."""
        body = self.read_body()
        if self.headers.get("Content-Encoding", "") == "gzip":
            body = gzip.decompress(body)
        return body

    def respond(
        self, status: int, body: bytes = b"", headers: Mapping[str, str] | None = None
    ) -> None:
        """Send a whole response: `headers`, then Content-Length and `body` unless 204 or 304."""
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if status not in (204, 304):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and status not in (204, 304):
            self.wfile.write(body)


class _ThreadingServer(ThreadingHTTPServer):
    daemon_threads = True  # a handler held in a stall or a long poll does not hold shutdown
    block_on_close = False
    request_queue_size = 64


class LoopbackHTTPServer(Service):
    """Serve `handler` on 127.0.0.1, at an ephemeral port, from a background thread.

    Every connection gets its own thread, so a handler may block (a stall, a long
    poll) without holding up the others. With `tls` the listening socket speaks HTTPS.
    A fake server subclasses it and hands its handler a reference to itself.
    """

    def __init__(
        self, handler: type[BaseHTTPRequestHandler], *, tls: ssl.SSLContext | None = None
    ) -> None:
        self._handler = handler
        self._tls = tls
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """Return `http(s)://127.0.0.1:<port>` (the port is 0 until started)."""
        return f"{'https' if self._tls else 'http'}://{HOST}:{self.port}"

    def start(self) -> Self:
        server = _ThreadingServer((HOST, 0), self._handler)
        if self._tls is not None:
            server.socket = self._tls.wrap_socket(server.socket, server_side=True)
        self._server = server
        self.port = int(server.server_address[1])
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(5)


class SilentListener(Service):
    """A TCP listener on 127.0.0.1 that accepts every connection, holds it open and never
    answers: a server that is stuck. `accepted` counts the connections so far."""

    def __init__(self) -> None:
        self._sock: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.accepted = 0

    @property
    def url(self) -> str:
        """Return `http://127.0.0.1:<port>`."""
        assert self._sock is not None, "not started"
        return f"http://{HOST}:{self._sock.getsockname()[1]}"

    def start(self) -> Self:
        self._sock = socket.create_server((HOST, 0), backlog=64)
        self._sock.settimeout(0.1)
        self._thread = threading.Thread(target=self._accept, args=(self._sock,), daemon=True)
        self._thread.start()
        return self

    def _accept(self, sock: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._conns.append(conn)  # held open, never read, never answered
            self.accepted += 1

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        for conn in self._conns:
            conn.close()
        self._conns.clear()
        if self._sock is not None:
            self._sock.close()
