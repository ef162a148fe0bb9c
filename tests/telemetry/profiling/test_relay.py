"""The loopback relay between pyroscope-io and Pyroscope: what it forwards, logs and drops."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import pytest

from alloy_runner.telemetry.profiling.relay import (
    TOKEN_HEADER,
    HttpSender,
    Outcome,
    ProfileRelay,
    Upload,
    redact,
)
from tests.support import free_port, http_request, wait_until
from tests.support.loopback import SilentListener
from tests.support.pyroscope import PUSH_PATH, PyroscopeReceiver

UPLOAD = Upload(PUSH_PATH, (("Content-Type", "application/proto"),), b"profile")


class Recorder:
    """A sender that answers from a script of outcomes and records what it was given."""

    def __init__(self, *outcomes: Outcome, hang: threading.Event | None = None) -> None:
        self.outcomes = list(outcomes)
        self.sent: list[tuple[Upload, float]] = []
        self.hang = hang
        self.called = threading.Event()

    def __call__(self, upload: Upload, timeout: float) -> Outcome:
        self.sent.append((upload, timeout))
        self.called.set()
        if self.hang is not None:
            self.hang.wait(timeout)
        return self.outcomes.pop(0) if self.outcomes else Outcome(200)


@pytest.fixture
def relays() -> Iterator[list[ProfileRelay]]:
    """Relays a test starts, shut down at teardown."""
    started: list[ProfileRelay] = []
    yield started
    for relay in started:
        relay.shutdown(timeout=1.0)


def _push(relay: ProfileRelay, token: str | None = None, body: bytes = b"profile") -> int:
    host, port = relay.url.removeprefix("http://").split(":")
    headers = {"Content-Type": "application/proto", TOKEN_HEADER: token or relay.token}
    return http_request(host, int(port), "POST", PUSH_PATH, headers, body).status


def _drain(relay: ProfileRelay, count: int) -> None:
    deadline = time.monotonic() + 5
    while relay.sent + relay.failed < count and time.monotonic() < deadline:
        time.sleep(0.01)


def test_forwards_body_and_headers_but_not_the_token(relays: list[ProfileRelay]) -> None:
    """An upload reaches Pyroscope at the push path under the server's URL path, with its
    headers but without the relay's token."""
    with PyroscopeReceiver() as receiver:
        relay = ProfileRelay(receiver.url + "/pyroscope/")
        relays.append(relay)
        relay.start()
        host, port = relay.url.removeprefix("http://").split(":")
        headers = {TOKEN_HEADER: relay.token, "X-Scope-OrgID": "t1", "Authorization": "Basic x"}
        assert http_request(host, int(port), "POST", PUSH_PATH, headers, b"").status == 200
        _drain(relay, 1)
    (push,) = receiver.pushes
    assert push.path == "/pyroscope" + PUSH_PATH
    assert push.headers["x-scope-orgid"] == "t1"
    assert push.headers["authorization"] == "Basic x"
    assert TOKEN_HEADER.lower() not in push.headers
    assert relay.failed == 1  # the receiver knows only PUSH_PATH at its root: 404


def test_refuses_pushes_without_the_token(relays: list[ProfileRelay]) -> None:
    """A request without the token the agent was given is refused with 403 and not sent."""
    sender = Recorder()
    relay = ProfileRelay("http://127.0.0.1:9", send=sender)
    relays.append(relay)
    relay.start()
    assert _push(relay, token="guess") == 403
    assert _push(relay) == 200
    _drain(relay, 1)
    assert len(sender.sent) == 1


def test_failure_is_logged_once_until_uploads_work_again(
    relays: list[ProfileRelay], caplog: pytest.LogCaptureFixture
) -> None:
    """Failed uploads log one warning; a success logs recovery; a new failure warns again."""
    sender = Recorder(
        Outcome(None, "refused"),
        Outcome(500, "HTTP 500"),
        Outcome(None, "timed out"),
        Outcome(200),
        Outcome(503, "HTTP 503"),
    )
    relay = ProfileRelay("http://127.0.0.1:9", send=sender)
    relays.append(relay)
    relay.start()

    def warnings() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]

    with caplog.at_level(logging.DEBUG, logger="alloy_runner.telemetry.profiling.relay"):
        for n in range(1, 6):
            assert _push(relay) == 200
            _drain(relay, n)
        # The count moves a moment before the message is logged.
        wait_until(lambda: len(warnings()) == 2, 5.0, interval=0.01, what="two warnings")
    logged = warnings()
    assert len(logged) == 2
    assert "refused" in logged[0] and "HTTP 503" in logged[1]
    assert any("work again (3 failed meanwhile)" in r.getMessage() for r in caplog.records)
    assert (relay.sent, relay.failed) == (1, 4)


def test_queue_keeps_the_newest_when_pyroscope_is_slow(relays: list[ProfileRelay]) -> None:
    """While an upload hangs, the agent is still answered at once and only the newest
    `queue_size` profiles wait; older ones are dropped."""
    release = threading.Event()
    sender = Recorder(hang=release)
    relay = ProfileRelay("http://127.0.0.1:9", send=sender, queue_size=2)
    relays.append(relay)
    relay.start()
    assert _push(relay, body=b"0") == 200
    assert sender.called.wait(5)
    began = time.monotonic()
    for n in range(1, 6):
        assert _push(relay, body=str(n).encode()) == 200
    assert time.monotonic() - began < 2.0
    release.set()
    _drain(relay, 3)
    assert [u.body for u, _ in sender.sent] == [b"0", b"4", b"5"]
    assert relay.dropped == 3


def test_shutdown_spends_its_deadline_and_no_more(relays: list[ProfileRelay]) -> None:
    """Shutdown with an upload hanging returns within its timeout; what was queued is dropped."""
    sender = Recorder(hang=threading.Event())
    relay = ProfileRelay("http://127.0.0.1:9", send=sender)
    relay.start()
    assert _push(relay) == 200
    assert sender.called.wait(5)
    assert _push(relay) == 200
    began = time.monotonic()
    relay.shutdown(timeout=0.5)
    assert time.monotonic() - began < 1.0
    assert relay.dropped == 1


def test_shutdown_sends_what_is_queued_when_it_can(relays: list[ProfileRelay]) -> None:
    """Profiles queued at shutdown are still sent while the deadline allows."""
    sender = Recorder()
    relay = ProfileRelay("http://127.0.0.1:9", send=sender)
    relay.start()
    assert _push(relay) == 200
    relay.shutdown(timeout=2.0)
    assert relay.sent == 1


@pytest.mark.parametrize("kind", ["refused", "silent"])
def test_http_sender_names_the_failure(kind: str) -> None:
    """The HTTP sender turns a refused connection or a timeout into a failed outcome."""
    if kind == "refused":
        outcome = HttpSender(f"http://127.0.0.1:{free_port()}")(UPLOAD, 2.0)
        assert not outcome.ok and "refused" in outcome.error.lower()
        return
    with SilentListener() as silent:
        began = time.monotonic()
        outcome = HttpSender(silent.url)(UPLOAD, 0.5)
        assert time.monotonic() - began < 2.0
    assert outcome == Outcome(None, "timed out")


def test_http_sender_reports_the_status_and_body() -> None:
    """A non-2xx answer is a failure naming the status and the first line of the body."""
    with PyroscopeReceiver(status=500) as receiver:
        outcome = HttpSender(receiver.url)(Upload(PUSH_PATH, (), b""), 5.0)
    assert outcome == Outcome(500, "HTTP 500: receiver says no")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://u:p@host:4040/x", "http://host:4040/x"),
        ("https://token@[::1]/", "https://[::1]/"),
        ("http://host:4040", "http://host:4040"),
    ],
)
def test_redact_removes_credentials(url: str, shown: str) -> None:
    """URLs in logs and pages carry no user name or password."""
    assert redact(url) == shown
