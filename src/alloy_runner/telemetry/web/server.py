"""The HTTP server for /metrics, /debug/..., /-/healthy and /-/ready, on its own threads.

It is the standard library's threading HTTP server: the runner needs a few
fixed routes, a per-connection idle timeout and a bound on connections, and
no dependency on the event loop, which is what `http.server` gives.
"""

from __future__ import annotations

import errno
import gzip
import logging
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from prometheus_client.exposition import choose_encoder

from alloy_runner.config.address import ListenAddress, format_hostport, resolve
from alloy_runner.exceptions import AddressError
from alloy_runner.telemetry.metrics.exposition import openmetrics_rendering
from alloy_runner.telemetry.web.gate import HeaderGate, PrefixedInput, SocketOutput

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from alloy_runner.telemetry.web.access import WebAccess

log = logging.getLogger(__name__)

LISTEN_BACKLOG = 256


@dataclass
class Response:
    """What a route answers."""

    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    status: HTTPStatus = HTTPStatus.OK
    headers: dict[str, str] = field(default_factory=dict)


Route = Callable[[dict[str, list[str]], dict[str, str]], Response]
"""A route handler: (query parameters, request headers) -> Response."""


class Exposition:
    """Render a registry in the format a scraper asks for, one collection at a time.

    The OTel Prometheus collector hands metrics from the SDK to the scrape
    through a shared queue: two collections at once can swap or duplicate each
    other's data, so collections are serialized here.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry
        self._lock = threading.Lock()

    def render(self, accept: str) -> tuple[bytes, str]:
        encoder, content_type = choose_encoder(accept)
        with self._lock:
            if content_type.startswith("application/openmetrics-text"):
                with openmetrics_rendering():
                    return encoder(self._registry), content_type
            return encoder(self._registry), content_type


def accepts_gzip(accept_encoding: str) -> bool:
    """Tell whether an Accept-Encoding header allows gzip with a valid q > 0."""
    for part in accept_encoding.split(","):
        token, _, params = part.strip().partition(";")
        if token.strip().lower() in ("gzip", "*"):
            return _quality(params) > 0
    return False


def _quality(params: str) -> float:
    """Return the q of `;q=0.5` (1 when absent, 0 when malformed: then no compression)."""
    for param in params.split(";"):
        name, _, value = param.strip().partition("=")
        if name.strip().lower() == "q":
            try:
                q = float(value.strip())
            except ValueError:
                return 0.0
            return q if 0.0 <= q <= 1.0 else 0.0
    return 1.0


INDEX = b"""<html><head><title>alloy-runner</title></head><body>
<h1>alloy-runner</h1>
<ul>
<li><a href="/metrics">/metrics</a>: Prometheus metrics</li>
<li><a href="/-/healthy">/-/healthy</a>, <a href="/-/ready">/-/ready</a>: health checks</li>
<li><a href="/debug/">/debug/</a>: debug endpoints</li>
</ul></body></html>
"""


class _Server:
    """The listening socket and the gate in front of the request handlers."""

    def __init__(self, owner: MetricsServer, addr: tuple[str, int], family: int) -> None:
        self.owner = owner
        self.socket = socket.socket(family, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6 and addr[0] == "::":
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        self._addr = addr
        self.gate = HeaderGate(self.socket, self._serve, self._tls)

    def bind(self) -> None:
        self.socket.bind(self._addr)
        # The default backlog of 5 overflows under a burst of scrapes: the kernel then
        # drops handshakes, so clients stall for seconds.
        self.socket.listen(LISTEN_BACKLOG)

    def _tls(self) -> ssl.SSLContext | None:
        web = self.owner.web
        return web.context if web is not None else None

    def _serve(
        self, sock: socket.socket, head: bytes, address: Any
    ) -> tuple[socket.socket, bytes] | None:
        handler = _Handler(sock, address, self, head)
        return None if handler.close_connection else (sock, handler.leftover)

    def close(self) -> None:
        self.socket.close()


class _Handler(BaseHTTPRequestHandler):
    """Answer one request whose head the gate has read; the gate keeps the connection."""

    server: _Server  # type: ignore[assignment]
    protocol_version = "HTTP/1.1"
    # A malformed request line is answered with a status line (http.server's default of
    # HTTP/0.9 answers it with a bare body) and a plain-text body.
    default_request_version = "HTTP/1.1"
    error_message_format = "%(code)d %(message)s\n"
    error_content_type = "text/plain; charset=utf-8"

    def __init__(self, sock: socket.socket, address: Any, server: _Server, head: bytes) -> None:
        self._input = PrefixedInput(head, sock)
        self.leftover = b""
        super().__init__(sock, address, server)  # type: ignore[arg-type]

    def setup(self) -> None:
        self.connection = self.request
        # Headers and body go out in two writes: without TCP_NODELAY the body waits for the
        # client's delayed ACK, which costs ~40 ms a scrape.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
        self.rfile = self._input.file
        self.wfile = SocketOutput(self.connection)  # type: ignore[assignment]

    def handle(self) -> None:
        self.close_connection = True
        self.handle_one_request()
        if not self.close_connection:
            self.leftover = self._input.leftover()

    def finish(self) -> None:
        pass  # the gate owns the socket: it closes it or waits for the next request

    def version_string(self) -> str:
        return "alloy-runner"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("metrics server: %s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        self._serve(head=False)

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def _not_allowed(self) -> None:
        if not self._authorized(self.path.partition("?")[0]):
            return
        self._send(
            Response(
                b"method not allowed\n",
                status=HTTPStatus.METHOD_NOT_ALLOWED,
                headers={"Allow": "GET, HEAD"},
            ),
            head=False,
        )
        self.close_connection = True  # an unread request body must not be taken for a request

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = do_CONNECT = _not_allowed

    def _serve(self, head: bool) -> None:
        path, _, query = self.path.partition("?")
        params: dict[str, list[str]] = {}
        if query:
            params = parse_qs(query)
        headers = {k.lower(): v for k, v in self.headers.items()}
        if not self._authorized(path, head):
            return
        try:
            response = self.server.owner.dispatch(path, params, headers)
        except Exception:
            log.error("metrics server: %s failed", path, exc_info=True)
            response = Response(b"internal error\n", status=HTTPStatus.INTERNAL_SERVER_ERROR)
        self._send(response, head, gzip_ok=accepts_gzip(headers.get("accept-encoding", "")))

    def _authorized(self, path: str, head: bool = False) -> bool:
        """Check the request's credentials against the web config; if they fail, answer."""
        web = self.server.owner.web
        if web is None:
            return True
        # Loaded with the web config that set `web`: a process without one never needs bcrypt.
        from alloy_runner.telemetry.web.basicauth import Verdict

        verdict = web.check(path, self.headers.get("Authorization"))
        if verdict is Verdict.ALLOWED:
            return True
        log.debug(
            "metrics server: %s %s from %s: %s",
            self.command,
            path,
            self.address_string(),
            verdict.value,
        )
        if verdict is Verdict.BUSY:
            response = Response(
                b"too many authentication checks at once; try again\n",
                status=HTTPStatus.TOO_MANY_REQUESTS,
                headers={"Retry-After": "1"},
            )
        else:
            response = Response(
                b"401 Unauthorized\n",
                status=HTTPStatus.UNAUTHORIZED,
                headers={"WWW-Authenticate": 'Basic realm="alloy-runner"'},
            )
        self._send(response, head)
        self.close_connection = True  # an unread request body must not be taken for a request
        return False

    def _send(self, response: Response, head: bool, gzip_ok: bool = False) -> None:
        body = response.body
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        if gzip_ok and len(body) > 512:
            body = gzip.compress(body, compresslevel=6)
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        web = self.server.owner.web
        for name, value in web.config.headers if web is not None else ():
            self.send_header(name, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)


class MetricsServer:
    """Serve the registry and the health and debug routes on `address` from a background thread."""

    def __init__(
        self,
        address: ListenAddress,
        registry: CollectorRegistry,
        *,
        ready: Callable[[], bool] = lambda: True,
        web: WebAccess | None = None,
    ) -> None:
        self.address = address
        # TLS and basic auth (a web config file); replaced as a whole at reload, and read
        # once per connection (TLS) and once per request (credentials, headers).
        self.web = web
        self._exposition = Exposition(registry)
        self._ready = ready
        self._routes: dict[str, Route] = {}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def add_route(self, path: str, route: Route) -> None:
        """Serve `route` at `path` (GET and HEAD)."""
        self._routes[path] = route

    def dispatch(
        self, path: str, params: dict[str, list[str]], headers: dict[str, str]
    ) -> Response:
        """Answer one request (public so that tests and benchmarks can call it directly)."""
        if path == "/metrics":
            body, content_type = self._exposition.render(headers.get("accept", ""))
            return Response(body, content_type)
        if path == "/-/healthy":
            return Response(b"alloy-runner is healthy.\n")
        if path == "/-/ready":
            if self._ready():
                return Response(b"alloy-runner is ready.\n")
            return Response(b"alloy-runner is not ready.\n", status=HTTPStatus.SERVICE_UNAVAILABLE)
        if path == "/":
            return Response(INDEX, "text/html; charset=utf-8")
        route = self._routes.get(path)
        if route is not None:
            return route(params, headers)
        if path in ("/debug", "/debug/"):
            listing = "".join(f"{p}\n" for p in sorted(self._routes) if p.startswith("/debug/"))
            return Response(listing.encode())
        return Response(b"404 page not found\n", status=HTTPStatus.NOT_FOUND)

    def start(self) -> tuple[str, int]:
        """Bind and serve; return the bound (host, port). Raise AddressError if it cannot bind."""
        family, host = resolve(self.address)
        server = _Server(self, (host, self.address.port), family)
        try:
            server.bind()
        except OSError as exc:
            server.close()
            raise AddressError(_bind_error(str(self.address), exc)) from None
        self._server = server
        self._thread = threading.Thread(
            target=server.gate.serve_forever, name="metrics-server", daemon=True
        )
        self._thread.start()
        return self.bound

    @property
    def bound(self) -> tuple[str, int]:
        """Return the (host, port) the server listens on."""
        if self._server is None:
            raise RuntimeError("server not started")
        sockname = self._server.socket.getsockname()
        return str(sockname[0]), int(sockname[1])

    @property
    def bound_text(self) -> str:
        host, port = self.bound
        return format_hostport(host, port)

    def shutdown(self, timeout: float = 2.0) -> None:
        """Stop accepting and close the socket within `timeout` seconds in all; safe twice.

        The gate is asked to stop (it wakes at once) and its thread is waited for once; a
        thread still running at the deadline is a daemon thread left behind, and the
        socket is closed anyway.
        """
        server, self._server = self._server, None
        if server is None:
            return
        server.gate.shutdown()
        if self._thread is not None:
            self._thread.join(max(0.0, timeout))
            if self._thread.is_alive():
                log.warning("metrics server: did not stop within %.1fs; leaving it behind", timeout)
        server.close()


def open_access_warning(bound: str, address: ListenAddress | None, web: WebAccess | None) -> str:
    """Return the warning for a metrics server that other hosts reach without TLS or auth, or ""."""
    if address is None or address.is_loopback or (web is not None and web.config.protected):
        return ""
    return (
        f"metrics server on {bound} is reachable from other hosts and has no authorization: "
        "bind it to localhost, set metrics_web_config (--web.config.file) for TLS and basic "
        "auth, or put a proxy with access control in front of it"
    )


def _bind_error(address: str, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return f"metrics server {address}: address already in use"
    if exc.errno == errno.EACCES:
        return f"metrics server {address}: permission denied (ports below 1024 need root)"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"metrics server {address}: address is not available on this machine"
    return f"metrics server {address}: cannot listen: {exc.strerror or exc}"
