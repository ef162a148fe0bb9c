"""The metrics server under abuse: slow senders, many sockets, malformed and huge requests.

A normal scrape must keep answering while the abuse goes on.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from tests.support import RunnerProcess, StartRunner
from tests.support.http_client import http_request, raw_exchange

SLOW_SOCKETS = 300


class Slowloris:
    """Hold `count` connections that each send one more header line every `interval` seconds."""

    def __init__(self, host: str, port: int, count: int, interval: float = 2.0) -> None:
        self.socks: list[socket.socket] = []
        for _ in range(count):
            sock = socket.create_connection((host, port), timeout=5)
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
            self.socks.append(sock)
        self.closed_by_server = 0
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drip, daemon=True)
        self._thread.start()

    def _drip(self) -> None:
        line = 0
        while not self._stop.wait(self._interval):
            line += 1
            for sock in list(self.socks):
                if _closed(sock):
                    self.socks.remove(sock)
                    sock.close()
                    self.closed_by_server += 1
                    continue
                with contextlib.suppress(OSError):
                    sock.sendall(b"X-Slow-%d: 1\r\n" % line)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for sock in self.socks:
            sock.close()


def _closed(sock: socket.socket) -> bool:
    """Tell whether the server closed `sock` (EOF or reset), without blocking."""
    try:
        return sock.recv(1, socket.MSG_DONTWAIT | socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


@pytest.fixture
def runner(start_runner: StartRunner) -> RunnerProcess:
    return start_runner(metrics_server="127.0.0.1:0")


@pytest.fixture
def slowloris(runner: RunnerProcess) -> Iterator[Slowloris]:
    attack = Slowloris(runner.host, runner.port, SLOW_SOCKETS)
    try:
        yield attack
    finally:
        attack.close()


def test_scrape_answers_within_a_second_while_300_slow_senders_are_held(
    runner: RunnerProcess, slowloris: Slowloris
) -> None:
    """Slow connections wait at the gate without a thread: a scraper still gets its 200."""
    time.sleep(2.5)  # let the attack send a line: every socket is now mid-head
    for _ in range(3):
        started = time.monotonic()
        reply = http_request(runner.host, runner.port, "GET", "/metrics", timeout=5)
        elapsed = time.monotonic() - started
        assert reply.status == 200
        assert b"ci_runner_version_info" in reply.body
        assert elapsed < 1.0, f"scrape took {elapsed:.2f}s"


def test_a_head_has_one_deadline_that_new_lines_do_not_reset(
    runner: RunnerProcess, slowloris: Slowloris
) -> None:
    """A connection still sending its head after the head deadline (5 s) is closed."""
    deadline = time.monotonic() + 15
    while slowloris.closed_by_server < SLOW_SOCKETS and time.monotonic() < deadline:
        time.sleep(0.5)
    assert slowloris.closed_by_server == SLOW_SOCKETS


def test_more_idle_sockets_than_the_gate_holds_do_not_lock_scrapers_out(
    runner: RunnerProcess,
) -> None:
    """When the gate is full, the connection that waited longest is dropped, not the new one."""
    idle = [socket.create_connection((runner.host, runner.port)) for _ in range(900)]
    try:
        reply = http_request(runner.host, runner.port, "GET", "/-/healthy", timeout=5)
        assert reply.status == 200
    finally:
        for sock in idle:
            sock.close()


def test_keep_alive_connections_are_served_again_and_again(runner: RunnerProcess) -> None:
    """Several requests on one connection, pipelined ones included, each get their answer."""
    request = b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n"
    with socket.create_connection((runner.host, runner.port), timeout=5) as sock:
        sock.sendall(request)
        first = _read_until(sock, b"alloy-runner is healthy.\n")
        sock.sendall(request * 2 + b"GET /-/ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        rest = _read_until(sock, None)
    assert first.count(b"HTTP/1.1 200 OK") == 1
    assert rest.count(b"HTTP/1.1 200 OK") == 3
    assert rest.endswith(b"alloy-runner is ready.\n")


def _read_until(sock: socket.socket, end: bytes | None) -> bytes:
    """Read until the data ends with `end`, or until the server closes when `end` is None."""
    data = b""
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ)
    deadline = time.monotonic() + 5
    while end is None or not data.endswith(end):
        assert sel.select(max(0.0, deadline - time.monotonic())), data
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/9.9 extra\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",  # a TLS hello to a plain port
    ],
)
def test_a_malformed_request_line_gets_a_plain_400_with_a_status_line(
    runner: RunnerProcess, request_bytes: bytes
) -> None:
    """http.server's HTTP/0.9 fallback would answer with a bare HTML body."""
    reply = raw_exchange(runner.host, runner.port, request_bytes)
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ")
    assert b"Content-Type: text/plain" in head
    assert body.startswith(b"400 ")
    assert b"<html" not in body.lower()


@pytest.mark.parametrize("method", ["TRACE", "CONNECT", "POST", "DELETE"])
def test_other_methods_get_405(runner: RunnerProcess, method: str) -> None:
    """Only GET and HEAD are served; the docs promise 405 for every other method."""
    reply = raw_exchange(
        runner.host, runner.port, f"{method} /metrics HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    )
    assert reply.startswith(b"HTTP/1.1 405 ")
    assert b"Allow: GET, HEAD" in reply


@pytest.mark.parametrize("encoding", ["gzip;q=abc", "gzip;q=", "gzip;q=0", "gzip;q=7"])
def test_a_bad_or_zero_gzip_quality_gets_an_uncompressed_200(
    runner: RunnerProcess, encoding: str
) -> None:
    """A malformed q is no permission to compress, and no reason to drop the request."""
    reply = http_request(
        runner.host, runner.port, "GET", "/metrics", headers={"Accept-Encoding": encoding}
    )
    assert reply.status == 200
    assert "content-encoding" not in reply.headers
    assert b"ci_runner_version_info" in reply.body


def test_gzip_with_a_valid_quality_is_compressed(runner: RunnerProcess) -> None:
    """gzip;q=0.5 still allows compression."""
    reply = http_request(
        runner.host, runner.port, "GET", "/metrics", headers={"Accept-Encoding": "gzip;q=0.5"}
    )
    assert reply.status == 200
    assert reply.headers.get("content-encoding") == "gzip"


def test_huge_headers_get_431_and_the_server_keeps_answering(runner: RunnerProcess) -> None:
    """A head over 64 KiB is refused with 431; the next scrape is served."""
    request = b"GET /metrics HTTP/1.1\r\n" + b"X-Big: " + b"a" * 70_000 + b"\r\n\r\n"
    reply = raw_exchange(runner.host, runner.port, request)
    assert reply.startswith(b"HTTP/1.1 431 ")
    assert http_request(runner.host, runner.port, "GET", "/metrics").status == 200
