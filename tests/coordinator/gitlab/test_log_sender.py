"""The trace sender against httpx.MockTransport: ranges, 416 recovery, cancel and abort."""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import Callable

import httpx

from alloy_runner.coordinator.gitlab.api import ApiClient, Backoff
from alloy_runner.coordinator.gitlab.log_sender import TraceSender, parse_range_end

FAST = Backoff(base=0.01, cap=0.02)
Handler = Callable[[httpx.Request], httpx.Response]


class TraceStore:
    """A coordinator's trace storage in the GitLab way: append at an offset, 416 past the end."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.ranges: list[str] = []
        self.headers: dict[str, str] = {}
        self.lose_next: int = 0  # bytes to forget right before the next patch

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.headers["JOB-TOKEN"] == "job-token"
        header = request.headers["Content-Range"]
        self.ranges.append(header)
        if self.lose_next:
            del self.data[len(self.data) - self.lose_next :]
            self.lose_next = 0
        match = re.fullmatch(r"(\d+)-(\d+)", header)
        assert match is not None
        start, end = int(match[1]), int(match[2])
        assert end == start + len(request.content) - 1
        if start > len(self.data):
            return httpx.Response(416, headers={"Range": f"0-{len(self.data)}", **self.headers})
        del self.data[start:]
        self.data += request.content
        return httpx.Response(202, headers={"Range": f"0-{len(self.data)}", **self.headers})


def sender_for(handler: Handler, **kwargs: object) -> tuple[TraceSender, ApiClient]:
    client = ApiClient(
        "http://coordinator.test", runner="r", transport=httpx.MockTransport(handler)
    )
    options: dict[str, object] = {"interval": 0.01, "backoff": FAST, **kwargs}
    return TraceSender(client, 42, "job-token", **options), client  # type: ignore[arg-type]


def run(coro_factory: Callable[[], object]) -> None:
    asyncio.run(coro_factory())  # type: ignore[arg-type]


def test_parse_range_end_reads_what_the_coordinator_holds() -> None:
    """`Range: 0-N` says the coordinator holds N bytes; anything else is unusable."""
    assert parse_range_end("0-1234") == 1234
    assert parse_range_end("bytes=0-7") == 7
    assert parse_range_end("5-10") is None
    assert parse_range_end("") is None
    assert parse_range_end("0-x") is None


def test_patches_are_contiguous_inclusive_ranges_and_deliver_every_byte() -> None:
    """Each PATCH covers `start-end` (end inclusive) right after the last, so the store is whole."""
    store = TraceStore()

    async def main() -> None:
        sender, client = sender_for(store, max_patch=1000)
        sender.start()
        for i in range(50):
            sender.write(f"line {i}\n".encode() * 30)
            await asyncio.sleep(0.002)
        await sender.close()
        assert bytes(store.data) == sender.trace
        await client.aclose()

    run(main)
    offsets = [tuple(map(int, r.split("-"))) for r in store.ranges]
    assert offsets[0][0] == 0
    assert all(b[0] == a[1] + 1 for a, b in itertools.pairwise(offsets))
    assert all(end - start + 1 <= 1000 for start, end in offsets)


def test_416_resumes_from_the_offset_in_the_range_header() -> None:
    """When the coordinator lost bytes, a 416 with `Range: 0-N` makes the sender resend from N."""
    store = TraceStore()

    async def main() -> None:
        sender, client = sender_for(store)
        sender.start()
        sender.write(b"a" * 100)
        while sender.sent < 100:
            await asyncio.sleep(0.005)
        store.lose_next = 40  # the coordinator now holds 60 bytes
        sender.write(b"b" * 10)
        await sender.close()
        assert bytes(store.data) == b"a" * 100 + b"b" * 10
        await client.aclose()

    run(main)
    assert "100-109" in store.ranges  # refused with 416
    assert store.ranges[-1] == "60-109"  # resent from where the coordinator stood


def test_416_without_a_usable_range_falls_back_to_a_full_update() -> None:
    """A 416 whose Range header is missing makes the sender send the whole log from byte 0."""
    calls: list[str] = []
    data = bytearray()

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.headers["Content-Range"])
        start = int(request.headers["Content-Range"].split("-")[0])
        if len(calls) == 2:
            return httpx.Response(416)
        del data[start:]
        data.extend(request.content)
        return httpx.Response(202)

    async def main() -> None:
        sender, client = sender_for(handler)
        sender.start()
        sender.write(b"x" * 10)
        while sender.sent < 10:
            await asyncio.sleep(0.005)
        sender.write(b"y" * 5)
        await sender.close()
        await client.aclose()

    run(main)
    assert calls == ["0-9", "10-14", "0-14"]
    assert bytes(data) == b"x" * 10 + b"y" * 5


def test_server_errors_and_resets_are_retried_until_every_byte_is_in() -> None:
    """5xx answers and dropped connections only delay the log: it arrives whole and in order."""
    store = TraceStore()
    attempts = 0

    def flaky(request: httpx.Request) -> httpx.Response:
        nonlocal attempts
        attempts += 1
        if attempts % 3 == 1:
            return httpx.Response(503)
        if attempts % 3 == 2:
            raise httpx.ReadError("connection reset by peer")
        return store(request)

    async def main() -> None:
        sender, client = sender_for(flaky, max_patch=64)
        sender.start()
        for i in range(20):
            sender.write(f"{i:04d}".encode() * 8)
            await asyncio.sleep(0.001)
        await sender.close()
        assert bytes(store.data) == sender.trace
        await client.aclose()

    run(main)
    assert attempts > 20


def test_job_status_canceling_sets_canceled_and_keeps_sending() -> None:
    """`Job-Status: canceling` on a PATCH answer cancels the build; the log still goes out."""
    store = TraceStore()
    store.headers = {"Job-Status": "canceling"}

    async def main() -> None:
        sender, client = sender_for(store)
        sender.start()
        sender.write(b"before\n")
        await asyncio.wait_for(sender.canceled.wait(), 2)
        sender.write(b"after\n")
        await sender.close()
        assert not sender.aborted
        assert bytes(store.data) == b"before\nafter\n"
        await client.aclose()

    run(main)


def test_403_aborts_the_job_and_stops_sending() -> None:
    """A 403 on the log means the job is no longer this runner's: cancel it, send no more."""
    calls = 0

    def forbidden(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(403)

    async def main() -> None:
        sender, client = sender_for(forbidden)
        sender.start()
        sender.write(b"x")
        await asyncio.wait_for(sender.canceled.wait(), 2)
        sender.write(b"y")
        await asyncio.wait_for(sender.close(), 2)
        assert sender.aborted
        await client.aclose()

    run(main)
    assert calls == 1


def test_update_interval_header_is_respected_within_bounds() -> None:
    """`X-GitLab-Trace-Update-Interval` sets the pace, but never slower than every 30 s."""
    store = TraceStore()

    async def main() -> None:
        sender, client = sender_for(store)
        sender.start()
        store.headers = {"X-GitLab-Trace-Update-Interval": "7"}
        sender.write(b"a")
        while sender.sent < 1:
            await asyncio.sleep(0.005)
        assert sender.interval == 7.0
        store.headers = {"X-GitLab-Trace-Update-Interval": "600"}
        sender.write(b"b")
        await sender.close()
        assert sender.interval == 30.0
        await client.aclose()

    run(main)


def test_a_silent_job_is_kept_alive_with_running_updates() -> None:
    """With no new output the sender PUTs `state=running` each force interval, and hears cancels."""
    bodies: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.method == "PUT"
        bodies.append(request.content)
        return httpx.Response(200, headers={"Job-Status": "canceled"})

    async def main() -> None:
        sender, client = sender_for(handler, force_interval=0.05)
        sender.start()
        await asyncio.wait_for(sender.canceled.wait(), 2)
        await sender.close()
        await client.aclose()

    run(main)
    assert b'"state":"running"' in bodies[0].replace(b" ", b"")
    assert b"job-token" in bodies[0]  # the job's token authenticates the update
