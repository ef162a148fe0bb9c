"""Shutdown within one deadline, in-process: the metrics server, and the observability object.

The server's gate loop is made to hang (its sweep for connections past their
deadline, which the loop runs every quarter of a second, blocks), as a loop stuck
on a slow step would.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

from alloy_runner.config.address import ListenAddress, parse_address
from alloy_runner.config.model import OtlpConfig, ProfilingConfig
from alloy_runner.telemetry.observability import Observability
from alloy_runner.telemetry.web import server as web_server
from alloy_runner.telemetry.web.gate import HeaderGate
from alloy_runner.telemetry.web.server import MetricsServer
from alloy_runner.version import build_info

GUARD = 20.0  # seconds a wait may take before the test fails instead of hanging


class Records(logging.Handler):
    """The messages logged to one logger while the test runs."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def server_log() -> Iterator[Records]:
    logger = logging.getLogger(web_server.__name__)
    records = Records()
    logger.addHandler(records)
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        yield records
    finally:
        logger.removeHandler(records)
        logger.setLevel(old_level)


@pytest.fixture
def stuck_loop(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """Make every metrics server's gate loop hang; return the event set once it hangs."""
    stuck, release = threading.Event(), threading.Event()

    def sweep(_self: object, _now: float) -> None:
        stuck.set()
        release.wait(GUARD)

    monkeypatch.setattr(HeaderGate, "_sweep", sweep)
    try:
        yield stuck
    finally:
        release.set()


def loopback() -> ListenAddress:
    address = parse_address("127.0.0.1:0")
    assert address is not None
    return address


def refused(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=GUARD).close()
    except ConnectionRefusedError:
        return True
    return False


def test_server_shutdown_spends_its_timeout_once(
    stuck_loop: threading.Event, server_log: Records
) -> None:
    """A hung gate loop costs `timeout` in all (not once per thread waited on); the socket
    is closed all the same, and the thread left behind is logged."""
    server = MetricsServer(loopback(), CollectorRegistry())
    host, port = server.start()
    assert stuck_loop.wait(GUARD)
    began = time.monotonic()
    server.shutdown(timeout=1.0)
    elapsed = time.monotonic() - began
    # Two waits of the whole timeout in turn took 2.0 s at least; one deadline takes ~1.0 s.
    assert 1.0 <= elapsed < 1.9
    assert refused(host, port)
    assert server_log.messages == ["metrics server: did not stop within 1.0s; leaving it behind"]
    server.shutdown(timeout=1.0)  # a second call does nothing


def test_server_shutdown_is_quick_when_nothing_hangs(server_log: Records) -> None:
    """A server that is not stuck stops at once (its loop is woken), and says nothing."""
    server = MetricsServer(loopback(), CollectorRegistry())
    host, port = server.start()
    server.shutdown(timeout=GUARD)
    assert refused(host, port)
    assert server_log.messages == []


def test_observability_shutdown_spends_one_deadline_across_its_parts(
    stuck_loop: threading.Event,
) -> None:
    """With the server hung, every part still stops within the one deadline: the server
    gets its share of it, and the telemetry providers what is left."""
    loop = asyncio.new_event_loop()
    try:
        observability = Observability(
            build_info(),
            otlp=OtlpConfig(),
            profiling=ProfilingConfig(),
            runners=["one"],
            address=loopback(),
            web=None,
            loop=loop,
            ready=lambda: True,
            routes={},
            env={},
            workers=list,
            active_runs=None,
        )
        assert observability.start() == []  # loopback: no open-access warning
        assert observability.server is not None
        host, port = observability.server.bound
        assert stuck_loop.wait(GUARD)
        assert observability.gc_timer in gc.callbacks
        began = time.monotonic()
        observability.shutdown(1.0)
        elapsed = time.monotonic() - began
    finally:
        loop.close()
    # The server's share is half the deadline; the old split spent a whole deadline there.
    assert elapsed < 1.0
    assert refused(host, port)
    assert observability.gc_timer not in gc.callbacks
