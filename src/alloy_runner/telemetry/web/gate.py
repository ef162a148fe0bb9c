"""Hold connections until a whole request head has arrived; only then give them a thread.

`http.server` gives each connection a thread from the moment it is accepted, so
a few hundred sockets that send a header line every couple of seconds
(slowloris) hold every thread, and a keep-alive scraper holds one between its
scrapes. Here one thread watches every waiting connection with a selector and
reads what they send without blocking; a connection reaches a worker thread
only with a complete request head, and goes back to the selector after its
response. Each waiting connection has one overall deadline for its head (not
one that every line resets); when the gate is full, the connection that has
waited longest is dropped, so a new scraper always gets in.

No library was taken for this: the servers that do it (uvicorn, hypercorn,
aiohttp) run on an event loop, and the metrics server must never depend on the
runner's loop (docs/design.md); the standard library's selector is enough.
"""

from __future__ import annotations

import contextlib
import io
import logging
import resource
import selectors
import socket
import ssl
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from alloy_runner.memory import release_free_memory

log = logging.getLogger(__name__)

HEAD_TIMEOUT = 5.0  # seconds from a connection's first byte (or its accept) to a whole head
IDLE_TIMEOUT = 10.0  # seconds a keep-alive connection may wait for its next request
MAX_HEAD = 64 * 1024  # bytes of request line and headers; more is answered with 431
MAX_WORKERS = 32  # threads that serve complete requests at once
SWEEP_INTERVAL = 0.25  # seconds between looks for connections past their deadline

TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: 32\r\nConnection: close\r\n\r\nrequest header fields too large\n"
)


def max_waiting() -> int:
    """Return how many connections may wait for their head: bounded by the fd limit."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 4096
    return max(16, min(4096, soft - 64 - MAX_WORKERS))


Serve = Callable[[socket.socket, bytes, object], "tuple[socket.socket, bytes] | None"]
"""Serve one request whose head starts `bytes`; return (socket, leftover) to keep it alive."""


@dataclass(eq=False)
class _Waiting:
    sock: socket.socket
    address: object
    deadline: float
    buffer: bytearray = field(default_factory=bytearray)
    handshaking: bool = False
    fresh: bool = True  # no byte of the current request has arrived yet


def head_complete(buffer: bytes | bytearray) -> bool:
    """Tell whether `buffer` holds a whole request head (or a request line without one)."""
    if b"\r\n\r\n" in buffer or b"\n\n" in buffer:
        return True
    line, newline, _ = bytes(buffer).partition(b"\n")
    # An HTTP/0.9 or malformed request line has no headers: http.server answers it alone.
    return bool(newline) and len(line.split()) < 3


class _PrefixedReader(io.RawIOBase):
    """A socket's input with the bytes the gate already read in front of it."""

    def __init__(self, prefix: bytes, sock: socket.socket) -> None:
        self._prefix = memoryview(prefix)
        self._sock = sock
        self.stopped = False  # set after a response: the buffer is then only drained

    def readable(self) -> bool:
        return True

    def readinto(self, b: memoryview) -> int:  # type: ignore[override]
        if self._prefix:
            n = min(len(b), len(self._prefix))
            b[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        if self.stopped:
            return 0
        return self._sock.recv_into(b)

    def rest(self) -> bytes:
        """Return the prefix bytes nobody read (a pipelined request)."""
        rest, self._prefix = bytes(self._prefix), memoryview(b"")
        return rest


class PrefixedInput:
    """The buffered `rfile` of a request, and what is left of it after the response."""

    def __init__(self, prefix: bytes, sock: socket.socket) -> None:
        self._raw = _PrefixedReader(prefix, sock)
        self.file = io.BufferedReader(self._raw)

    def leftover(self) -> bytes:
        """Return every byte read from the client but not consumed by the request."""
        self._raw.stopped = True
        chunks = []
        while chunk := self.file.read1(MAX_HEAD):
            chunks.append(chunk)
        return b"".join(chunks) + self._raw.rest()


class SocketOutput(io.RawIOBase):
    """An unbuffered `wfile` that sends every write whole (as socketserver's private one)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def writable(self) -> bool:
        return True

    def write(self, b: bytes) -> int:  # type: ignore[override]
        self._sock.sendall(b)
        return len(b)


class HeaderGate:
    """Accept on `listener`, wait for heads on one thread, serve heads on worker threads."""

    def __init__(
        self,
        listener: socket.socket,
        serve: Serve,
        tls: Callable[[], ssl.SSLContext | None],
        *,
        head_timeout: float = HEAD_TIMEOUT,
        idle_timeout: float = IDLE_TIMEOUT,
        capacity: int | None = None,
    ) -> None:
        self._listener = listener
        self._serve = serve
        self._tls = tls
        self._head_timeout = head_timeout
        self._idle_timeout = idle_timeout
        self._capacity = capacity or max_waiting()
        self._selector = selectors.DefaultSelector()
        self._waiting: OrderedDict[socket.socket, _Waiting] = OrderedDict()
        self._wake_r, self._wake_w = socket.socketpair()
        self._lock = threading.Lock()
        self._returned: deque[tuple[socket.socket, bytes, object]] = deque()
        self._ready: deque[tuple[socket.socket, bytes, object]] = deque()
        self._workers = 0
        self._stopping = threading.Event()
        self.evicted = 0  # connections dropped because the gate was full (for tests)
        self.expired = 0  # connections dropped at their deadline (for tests)

    def serve_forever(self) -> None:
        """Run the gate until `shutdown()`; then close every connection still waiting."""
        self._listener.setblocking(False)
        self._wake_r.setblocking(False)
        self._selector.register(self._listener, selectors.EVENT_READ, "accept")
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        next_sweep = time.monotonic() + SWEEP_INTERVAL
        try:
            while not self._stopping.is_set():
                for key, _ in self._selector.select(SWEEP_INTERVAL):
                    self._on_event(key.data, key.fileobj)  # type: ignore[arg-type]
                now = time.monotonic()
                if now >= next_sweep:
                    self._sweep(now)
                    next_sweep = now + SWEEP_INTERVAL
        finally:
            for waiting in list(self._waiting.values()):
                self._drop(waiting)
            self._selector.close()
            self._wake_r.close()
            self._wake_w.close()

    def shutdown(self) -> None:
        """Ask the gate to stop (from any thread)."""
        self._stopping.set()
        self._wake()

    def _wake(self) -> None:
        # Full (a wake-up is pending anyway) or closed at shutdown: either way, nothing to do.
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")

    def _on_event(self, data: object, fileobj: socket.socket) -> None:
        if data == "accept":
            self._accept()
        elif data == "wake":
            self._take_returned()
        elif isinstance(data, _Waiting):
            self._progress(data)

    def _accept(self) -> None:
        for _ in range(64):  # a burst is taken in one go, but never starves the waiting
            try:
                sock, address = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of fds, a reset before accept: keep serving
                log.debug("metrics server: accept failed: %s", exc)
                return
            sock.setblocking(False)
            context = self._tls()
            waiting = _Waiting(sock, address, time.monotonic() + self._head_timeout)
            if context is not None:
                try:
                    waiting.sock = context.wrap_socket(
                        sock, server_side=True, do_handshake_on_connect=False
                    )
                except (OSError, ValueError) as exc:
                    log.debug("metrics server: TLS with %s failed: %s", address, exc)
                    sock.close()
                    continue
                waiting.handshaking = True
            self._add(waiting)

    def _add(self, waiting: _Waiting) -> None:
        while len(self._waiting) >= self._capacity:
            _, oldest = self._waiting.popitem(last=False)
            self.evicted += 1
            self._drop(oldest, registered=True)
        self._waiting[waiting.sock] = waiting
        self._selector.register(waiting.sock, selectors.EVENT_READ, waiting)

    def _drop(self, waiting: _Waiting, registered: bool = True) -> None:
        self._waiting.pop(waiting.sock, None)
        if registered:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(waiting.sock)
        waiting.sock.close()

    def _progress(self, waiting: _Waiting) -> None:
        if waiting.handshaking and not self._handshake(waiting):
            return
        while True:
            try:
                data = waiting.sock.recv(MAX_HEAD)
            except (BlockingIOError, InterruptedError, ssl.SSLWantReadError):
                break
            except ssl.SSLWantWriteError:
                self._selector.modify(waiting.sock, selectors.EVENT_WRITE, waiting)
                return
            except OSError:
                self._drop(waiting)
                return
            if not data:  # the client closed its side: serve what it sent, if anything
                if waiting.buffer:
                    self._hand_off(waiting)
                else:
                    self._drop(waiting)
                return
            self._received(waiting, data)
            if waiting.sock not in self._waiting:
                return
        if head_complete(waiting.buffer):
            self._hand_off(waiting)

    def _received(self, waiting: _Waiting, data: bytes) -> None:
        if waiting.fresh:
            waiting.fresh = False
            waiting.deadline = min(waiting.deadline, time.monotonic() + self._head_timeout)
        waiting.buffer += data
        if len(waiting.buffer) > MAX_HEAD and not head_complete(waiting.buffer):
            with contextlib.suppress(OSError):
                waiting.sock.send(TOO_LARGE)
            self._drop(waiting)

    def _handshake(self, waiting: _Waiting) -> bool:
        sock = waiting.sock
        assert isinstance(sock, ssl.SSLSocket)
        try:
            sock.do_handshake()
        except ssl.SSLWantReadError:
            self._selector.modify(sock, selectors.EVENT_READ, waiting)
            return False
        except ssl.SSLWantWriteError:
            self._selector.modify(sock, selectors.EVENT_WRITE, waiting)
            return False
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            log.debug("metrics server: TLS handshake with %s failed: %s", waiting.address, exc)
            self._drop(waiting)
            return False
        waiting.handshaking = False
        self._selector.modify(sock, selectors.EVENT_READ, waiting)
        return True

    def _sweep(self, now: float) -> None:
        for waiting in [w for w in self._waiting.values() if w.deadline <= now]:
            self.expired += 1
            self._drop(waiting)

    def _hand_off(self, waiting: _Waiting) -> None:
        self._waiting.pop(waiting.sock, None)
        self._selector.unregister(waiting.sock)
        job = (waiting.sock, bytes(waiting.buffer), waiting.address)
        with self._lock:
            if self._workers >= MAX_WORKERS:
                self._ready.append(job)
                return
            self._workers += 1
        threading.Thread(
            target=self._work, args=(job,), name="metrics-request", daemon=True
        ).start()

    def _work(self, job: tuple[socket.socket, bytes, object]) -> None:
        while True:
            sock, head, address = job
            kept = None
            try:
                sock.setblocking(True)
                sock.settimeout(self._idle_timeout)
                kept = self._serve(sock, head, address)
            except Exception:  # a worker never dies: the connection does
                log.debug("metrics server: error serving %s", address, exc_info=True)
            if kept is None:
                _close(sock)
            else:
                with self._lock:
                    self._returned.append((kept[0], kept[1], address))
                self._wake()
            with self._lock:
                if not self._ready:
                    self._workers -= 1
                    last = self._workers == 0
                    break
                job = self._ready.popleft()
        if last:  # the burst is over: its arenas' free pages go back (alloy_runner/memory.py)
            release_free_memory()

    def _take_returned(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass
        while True:
            with self._lock:
                if not self._returned:
                    return
                sock, leftover, address = self._returned.popleft()
            if self._stopping.is_set():
                _close(sock)
                continue
            sock.setblocking(False)
            waiting = _Waiting(sock, address, time.monotonic() + self._idle_timeout)
            self._add(waiting)
            if leftover:
                self._received(waiting, leftover)
                if waiting.sock in self._waiting and head_complete(waiting.buffer):
                    self._hand_off(waiting)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
