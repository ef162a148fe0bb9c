"""Send a job's log to the coordinator as it grows: incremental PATCHes, in order, none lost.

The whole log stays in memory until the job is reported (it is already cut at
the runner's `output_limit`), so a coordinator that was down, or that lost
what it had (416 Range Not Satisfiable, 412 on the final update), gets every
byte again from wherever it says it stands.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import zlib
from enum import Enum
from typing import Any

import httpx

from alloy_runner.coordinator.api_metrics import Endpoint
from alloy_runner.coordinator.gitlab.api import ApiClient, Backoff, is_transient
from alloy_runner.exceptions import Unreachable

log = logging.getLogger(__name__)

TRACE_INTERVAL = 3.0  # seconds between PATCHes while output grows (GitLab Runner's default)
FORCE_INTERVAL = 30.0  # the longest the coordinator goes without hearing about a running job
MIN_INTERVAL = 0.1  # the shortest interval a coordinator may ask for
FIRST_PATCH_DELAY = 0.5  # the job's first lines show up this soon, not an interval later
MAX_PATCH = 1 << 20  # bytes in one PATCH; a larger backlog goes out in back-to-back PATCHes
INTERVAL_HEADER = "X-GitLab-Trace-Update-Interval"
STATUS_HEADER = "Job-Status"
CANCEL_STATUSES = ("canceling", "canceled")
ABORT_STATUSES = ("failed",)  # the coordinator already ended the job: stop working on it


class _Sent(Enum):
    OK = "ok"
    FAILED = "failed"  # try again after a backoff
    STOP = "stop"


def parse_range_end(header: str | None) -> int | None:
    """Return N of a `Range: 0-N` header (how many bytes the coordinator holds), else None."""
    if not header:
        return None
    start, sep, end = header.strip().removeprefix("bytes=").partition("-")
    if not sep or not start.isdecimal() or not end.isdecimal() or int(start) != 0:
        return None
    return int(end)


class TraceSender:
    """Stream one job's log to `PATCH /jobs/:id/trace`, and keep the job alive at the source.

    `write` takes bytes as the build produces them (never blocks); a task sends
    them about every `interval` seconds, at once when a full PATCH is waiting.
    `canceled` is set when the coordinator says the job is canceled (a
    `Job-Status` header) or is no longer the runner's (403, 404).
    """

    def __init__(
        self,
        client: ApiClient,
        job_id: int,
        token: str,
        *,
        interval: float = TRACE_INTERVAL,
        force_interval: float = FORCE_INTERVAL,
        max_patch: int = MAX_PATCH,
        backoff: Backoff | None = None,
        info: dict[str, Any] | None = None,
    ) -> None:
        self._client = client
        self.job_id = job_id
        self._token = token
        self.interval = interval
        self._force_interval = force_interval
        self._max_patch = max_patch
        self._backoff = backoff if backoff is not None else Backoff()
        self._info = info
        self._buf = bytearray()
        self.sent = 0  # bytes the coordinator acknowledged holding
        self.canceled = asyncio.Event()
        self.aborted = False
        self._closed = False
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._failures = 0
        self._last_contact = 0.0
        self._patched = False  # the coordinator has taken a first PATCH

    # --- the build's side ----------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Take more of the log (already masked and cut at the output limit)."""
        self._buf += data
        if self.pending >= self._max_patch:
            self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._buf) - self.sent

    @property
    def trace(self) -> bytes:
        """Return the whole log so far."""
        return bytes(self._buf)

    def output(self) -> dict[str, Any]:
        """Return the final update's `output`: the log's size and CRC32, to check it arrived."""
        return {"checksum": f"crc32:{zlib.crc32(self._buf):08x}", "bytesize": len(self._buf)}

    def start(self) -> None:
        """Begin sending in the background."""
        self._last_contact = asyncio.get_running_loop().time()
        self._task = asyncio.create_task(self._run(), name=f"trace-{self.job_id}")

    async def close(self) -> None:
        """Return once every byte written is at the coordinator (or the job was aborted)."""
        self._closed = True
        self._wake.set()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"trace-{self.job_id}")
        try:
            await asyncio.shield(self._task)
        except asyncio.CancelledError:
            self._task.cancel()
            raise

    async def resend_all(self) -> None:
        """Send the whole log again (the coordinator's copy failed its checksum)."""
        self.sent = 0
        self._failures = 0
        self._task = None
        await self.close()

    # --- sending ---------------------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self.aborted and not (self._closed and self.pending == 0):
            await self._pause()
            try:
                if self.pending:
                    outcome = await self._patch()
                elif not self._closed and loop.time() - self._last_contact >= self._force_interval:
                    outcome = await self._touch()
                else:
                    continue
            except Exception:  # a bug must not lose the log: note it, back off, go on
                log.error("job %d: sending the log failed", self.job_id, exc_info=True)
                outcome = _Sent.FAILED
            if outcome is _Sent.STOP:
                return
            if outcome is _Sent.FAILED:
                self._failures += 1
            elif self._failures:
                log.info("job %d: the coordinator takes the log again", self.job_id)
                self._failures = 0

    async def _pause(self) -> None:
        if self._failures:
            # A write does not cut a backoff short: the coordinator is struggling.
            await asyncio.sleep(self._backoff.delay(self._failures))
            return
        if self._closed or self.pending >= self._max_patch:
            return
        self._wake.clear()
        wait = self.interval if self._patched else min(self.interval, FIRST_PATCH_DELAY)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), wait)

    async def _patch(self) -> _Sent:
        start = self.sent
        chunk = bytes(self._buf[start : start + self._max_patch])
        end = start + len(chunk)
        headers = {
            "JOB-TOKEN": self._token,
            "Content-Range": f"{start}-{end - 1}",
            "Content-Type": "text/plain",
        }
        try:
            response = await self._client.call(
                Endpoint.PATCH_TRACE,
                "PATCH",
                f"jobs/{self.job_id}/trace",
                content=chunk,
                headers=headers,
            )
        except Unreachable as exc:
            return self._unreachable(exc)
        if self._heard(response):
            return _Sent.STOP
        status = response.status_code
        if status == 202:
            self.sent = end
            self._patched = True
            return _Sent.OK
        if status == 416:
            return self._range_mismatch(response, start)
        if status in (403, 404):
            self._abort(f"the coordinator answered HTTP {status} to its log")
            return _Sent.STOP
        if not (is_transient(status) or status == 409) and self._failures == 0:
            log.warning("job %d: the coordinator answered HTTP %d to its log", self.job_id, status)
        return _Sent.FAILED

    def _range_mismatch(self, response: httpx.Response, start: int) -> _Sent:
        held = parse_range_end(response.headers.get("Range"))
        # Without a usable Range (or one past what exists), send the whole log again.
        resume = held if held is not None and held <= len(self._buf) else 0
        log.info(
            "job %d: the coordinator holds %s bytes of the log, not %d; sending from byte %d",
            self.job_id,
            "an unknown number of" if held is None else held,
            start,
            resume,
        )
        self.sent = resume
        return _Sent.FAILED if resume == start else _Sent.OK

    async def _touch(self) -> _Sent:
        body: dict[str, Any] = {"token": self._token, "state": "running"}
        if self._info is not None:
            body["info"] = self._info
        try:
            response = await self._client.call(
                Endpoint.UPDATE_JOB, "PUT", f"jobs/{self.job_id}", json=body
            )
        except Unreachable as exc:
            return self._unreachable(exc)
        if self._heard(response):
            return _Sent.STOP
        if response.status_code in (403, 404):
            self._abort(f"the coordinator answered HTTP {response.status_code} to an update")
            return _Sent.STOP
        return _Sent.OK if response.status_code < 400 else _Sent.FAILED

    def _heard(self, response: httpx.Response) -> bool:
        """Take in what every answer says about the job; True if it must stop."""
        self._last_contact = asyncio.get_running_loop().time()
        wanted = response.headers.get(INTERVAL_HEADER)
        if wanted:
            with contextlib.suppress(ValueError):
                self.interval = min(FORCE_INTERVAL, max(MIN_INTERVAL, float(wanted)))
        state = response.headers.get(STATUS_HEADER, "").strip().lower()
        if state in CANCEL_STATUSES and not self.canceled.is_set():
            log.info("job %d: the coordinator says it is %s", self.job_id, state)
            self.canceled.set()
        elif state in ABORT_STATUSES:
            self._abort(f"the coordinator says it is {state}")
            return True
        return False

    def _unreachable(self, exc: Unreachable) -> _Sent:
        if self._failures == 0:
            log.warning(
                "job %d: cannot reach the coordinator (%s); keeping %d bytes of log to send",
                self.job_id,
                exc,
                self.pending,
            )
        return _Sent.FAILED

    def _abort(self, why: str) -> None:
        if not self.aborted:
            log.warning("job %d: %s; stopping the job", self.job_id, why)
        self.aborted = True
        self.canceled.set()
