"""A runner's view of the spool: the JobSource of every `[[runners]]` entry without a `url`."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
from pathlib import Path
from typing import IO, TYPE_CHECKING

from alloy_runner.coordinator.spool.records import SpoolStatus
from alloy_runner.coordinator.spool.store import Spool, Taken

if TYPE_CHECKING:
    from alloy_runner.build.build import BuildResult
    from alloy_runner.build.job import Artifact, Dependency, Job
    from alloy_runner.build.joblog import Sink

POLL_INTERVAL = (
    0.025  # seconds between looks at pending/ while idle: pickup stays well under 100 ms
)
CANCEL_POLL_INTERVAL = 0.2


class SpoolSource:
    """Take jobs from a spool for one runner, and write their logs and results back into it."""

    def __init__(self, spool: Spool, runner: str, poll_interval: float = POLL_INTERVAL) -> None:
        self.spool = spool
        self.runner = runner
        self._poll = poll_interval
        self._taken: dict[int, Taken] = {}
        self._traces: dict[int, IO[bytes]] = {}

    async def request(self) -> Job | None:
        taken = self.spool.take()
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
        handle = open(self.spool.trace_path(job.id), "ab")  # noqa: SIM115 - closed in finish()
        self._traces[job.id] = handle

        def write(data: bytes) -> None:
            handle.write(data)
            handle.flush()

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
