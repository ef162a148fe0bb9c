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
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from prometheus_client.exposition import choose_encoder

from alloy_runner.config.address import ListenAddress, format_hostport, resolve
from alloy_runner.exceptions import AddressError
from alloy_runner.telemetry.web.basicauth import Verdict

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from alloy_runner.telemetry.web.webconfig import WebAccess

log = logging.getLogger(__name__)

IDLE_TIMEOUT = 10.0
MAX_CONNECTIONS = 256


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
            return encoder(self._registry), content_type


def accepts_gzip(accept_encoding: str) -> bool:
    """Tell whether an Accept-Encoding header allows gzip (and does not refuse it with q=0)."""
    for part in accept_encoding.split(","):
        token, _, params = part.strip().partition(";")
        if token.strip().lower() in ("gzip", "*"):
            q = params.strip().lower()
            return not (q.startswith("q=") and float(q[2:] or 0) == 0)
    return False


INDEX = b"""<html><head><title>alloy-runner</title></head><body>
<h1>alloy-runner</h1>
<ul>
<li><a href="/metrics">/metrics</a>: Prometheus metrics</li>
<li><a href="/-/healthy">/-/healthy</a>, <a href="/-/ready">/-/ready</a>: health checks</li>
<li><a href="/debug/">/debug/</a>: debug endpoints</li>
</ul></body></html>
"""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    # socketserver's default backlog of 5 overflows under a burst of scrapes: the kernel then
    # drops handshakes, so clients stall for seconds or hang on a connection never accepted.
    request_queue_size = MAX_CONNECTIONS

    def __init__(self, owner: MetricsServer, addr: tuple[str, int], family: int) -> None:
        self.address_family = family
        self.owner = owner
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__(addr, _Handler, bind_and_activate=False)

    def server_bind(self) -> None:
        if self.address_family == socket.AF_INET6 and self.server_address[0] == "::":
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()

    def process_request(self, request: Any, client_address: Any) -> None:
        # A flood of connections is refused at the door rather than growing threads without bound.
        if not self.slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def finish_request(self, request: Any, client_address: Any) -> None:
        web = self.owner.web
        if web is None or web.context is None:
            super().finish_request(request, client_address)
            return
        # The handshake runs here, in the connection's own thread, bounded by the idle
        # timeout: a client that connects and stalls never holds up the accept loop.
        request.settimeout(IDLE_TIMEOUT)
        try:
            tls = web.context.wrap_socket(request, server_side=True)
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            log.debug("metrics server: TLS handshake with %s failed: %s", client_address, exc)
            return
        try:
            super().finish_request(tls, client_address)
        finally:
            self.shutdown_request(tls)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("metrics server: error serving %s", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT  # a client that connects and sends nothing is dropped
    # Headers and body go out in two writes: without TCP_NODELAY the body waits for the
    # client's delayed ACK, which costs ~40 ms a scrape.
    disable_nagle_algorithm = True

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

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed

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
            server.server_bind()
            server.server_activate()
        except OSError as exc:
            server.server_close()
            raise AddressError(_bind_error(str(self.address), exc)) from None
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="metrics-server",
            daemon=True,
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
        """Stop accepting and close the socket within `timeout` seconds; safe to call twice."""
        server, self._server = self._server, None
        if server is None:
            return
        stopper = threading.Thread(target=server.shutdown, daemon=True)
        stopper.start()
        stopper.join(timeout)
        server.server_close()
        if self._thread is not None:
            self._thread.join(max(0.0, timeout))


def _bind_error(address: str, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return f"metrics server {address}: address already in use"
    if exc.errno == errno.EACCES:
        return f"metrics server {address}: permission denied (ports below 1024 need root)"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"metrics server {address}: address is not available on this machine"
    return f"metrics server {address}: cannot listen: {exc.strerror or exc}"
