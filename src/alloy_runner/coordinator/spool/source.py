"""A runner's view of the spool: the JobSource of every `[[runners]]` entry without a `url`."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING

from alloy_runner.coordinator.spool.records import SpoolStatus
from alloy_runner.coordinator.spool.runs import PipelineRun, ended_run
from alloy_runner.coordinator.spool.store import Spool, Taken

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from alloy_runner.build.build import BuildResult
    from alloy_runner.build.job import Artifact, Dependency, Job
    from alloy_runner.build.joblog import Sink

# Seconds between looks at pending/ while idle: pickup stays well under 100 ms.
POLL_INTERVAL = 0.025
CANCEL_POLL_INTERVAL = 0.2

log = logging.getLogger(__name__)


class SpoolSource:
    """Take jobs from a spool for one runner, and write their logs and results back into it."""

    def __init__(
        self,
        spool: Spool,
        runner: str,
        poll_interval: float = POLL_INTERVAL,
        *,
        on_run_end: Callable[[PipelineRun], None] | None = None,
    ) -> None:
        self.spool = spool
        self.runner = runner
        self.on_run_end = on_run_end  # told once of each pipeline whose last job this one ends
        self._poll = poll_interval
        self._taken: dict[int, Taken] = {}
        self._traces: dict[int, IO[bytes]] = {}
        self._unwritable = False

    async def request(self) -> Job | None:
        try:
            taken = self.spool.take()
        except OSError as exc:  # a full disk: wait until there is room, saying so once
            if not self._unwritable:
                log.error("runner %s: cannot take jobs from the spool: %s", self.runner, exc)
            self._unwritable = True
            return None
        if self._unwritable:
            log.info("runner %s: the spool is writable again", self.runner)
            self._unwritable = False
        if taken is None:
            return None
        self._taken[taken.job.id] = taken
        return dataclasses.replace(taken.job, queued_seconds=taken.queued_seconds)

    async def wait_for_jobs(self, timeout: float) -> None:
        # A directory scan is a few microseconds; polling it is simpler and more portable
        # (overlay, NFS) than inotify, and its cost is measured in benchmarks/RESULTS.md.
        pending = self.spool.dir("pending")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            await asyncio.sleep(self._poll)
            with os.scandir(pending) as entries:
                if any(True for _ in entries):
                    return

    def job_url(self, job: Job) -> str:
        return self.spool.job_url(job.id)

    def trace_sink(self, job: Job) -> Sink:
        # Unbuffered: each write is on disk when it returns, and a failed one leaves no bytes
        # behind in a buffer to surface later, after the line that says the disk is full.
        handle = open(self.spool.trace_path(job.id), "ab", buffering=0)  # noqa: SIM115
        self._traces[job.id] = handle

        def write(data: bytes) -> None:
            view = memoryview(data)
            try:
                while view:
                    view = view[handle.write(view) or 0 :]
            except OSError as exc:
                if exc.errno == errno.ENOSPC:
                    _say_disk_full(handle)
                raise

        return write

    async def started(self, job: Job) -> None:
        return None

    async def watch_cancel(self, job: Job) -> None:
        while not self.spool.canceled(job.id):
            await asyncio.sleep(CANCEL_POLL_INTERVAL)

    async def fetch_artifacts(self, job: Job, dependency: Dependency, dest: Path) -> bool:
        source = self.spool.dir("done") / str(dependency.id) / "artifacts.zip"
        if not source.is_file():
            return False
        await asyncio.to_thread(shutil.copyfile, source, dest)
        return True

    async def upload_artifacts(self, job: Job, artifact: Artifact, archive: Path) -> None:
        work = self.spool.dir("work") / str(job.id)
        target = work / "artifacts.zip"
        index = 1
        while target.exists():
            target = work / f"artifacts-{index}.zip"
            index += 1
        await asyncio.to_thread(shutil.move, archive, target)

    async def finish(self, job: Job, result: BuildResult) -> None:
        handle = self._traces.pop(job.id, None)
        if handle is not None:
            with contextlib.suppress(OSError):
                handle.close()
        taken = self._taken.pop(job.id)
        await asyncio.to_thread(
            lambda: self.spool.complete(
                taken,
                SpoolStatus.of(result.state),
                result.failure_reason,
                duration=result.duration,
                exit_code=result.exit_code,
                runner=self.runner,
            )
        )
        if self.on_run_end is not None:
            await asyncio.to_thread(self._run_end, job)

    def _run_end(self, job: Job) -> None:
        pipeline = next((v.value for v in job.variables if v.key == "CI_PIPELINE_ID"), "")
        if not pipeline.isdecimal() or self.on_run_end is None:
            return
        try:
            run = ended_run(self.spool, int(pipeline))
        except (OSError, ValueError, KeyError, TypeError):
            log.debug("spool: cannot read pipeline %s", pipeline, exc_info=True)
            return
        if run is not None:
            self.on_run_end(run)


DISK_FULL_ROOM = 64 * 1024  # bytes of the log's tail given up to say why it ends
DISK_FULL = (
    b"\nERROR: the disk is full (No space left on device): the job's log ends here, and the "
    b"job fails (runner_system_failure)\n"
)


def _say_disk_full(handle: IO[bytes]) -> None:
    """Give up the log's last 64 KiB so that the line saying why it ends (and the result) fit."""
    with contextlib.suppress(OSError):
        fd = handle.fileno()
        os.ftruncate(fd, max(0, os.fstat(fd).st_size - DISK_FULL_ROOM))
        os.write(fd, DISK_FULL)
