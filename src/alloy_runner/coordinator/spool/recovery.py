"""A job that ends otherwise than it should: retried after a failure, or left by a dead runner."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alloy_runner.build.job import Job
from alloy_runner.build.states import FailureReason
from alloy_runner.config.model import SpoolRecovery
from alloy_runner.coordinator.spool import groups
from alloy_runner.coordinator.spool.flow import retry_wanted
from alloy_runner.coordinator.spool.records import (
    RecoveryOutcome,
    SpoolStatus,
    Taken,
    entry_job_id,
    lock_entry,
    pipeline_of_payload,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from alloy_runner.coordinator.spool.store import Spool


def retry(
    spool: Spool,
    taken: Taken,
    payload: dict[str, Any],
    reason: FailureReason | None,
    exit_code: int | None,
) -> bool:
    """Queue a failed job again when its `retry` says so; True if it was."""
    job_id, pipeline_id = taken.job.id, pipeline_of_payload(payload)
    if pipeline_id is None or spool.canceled(job_id):
        return False
    job = next((j for _, jobs in spool.pipeline(pipeline_id) for j in jobs if j.id == job_id), None)
    attempt = spool.attempt(job_id)
    if job is None or not retry_wanted(job, attempt, reason.value if reason else None, exit_code):
        return False
    (spool.dir("attempts") / str(job_id)).write_text(str(attempt + 1))
    work = spool.dir("work") / str(job_id)
    with contextlib.suppress(FileNotFoundError):
        spool.trace_path(job_id).rename(work / f"trace-attempt-{attempt}.log")
    for archive in work.glob("artifacts*.zip"):
        archive.unlink()
    groups.release(spool.root, job_id)
    if job.resource_group:
        groups.mark(spool.root, job_id, job.resource_group)
    (spool.dir("running") / f"{job_id}.json").rename(spool.dir("pending") / f"{job_id}.json")
    os.close(taken.fd)
    return True


def recover(
    spool: Spool, mode: SpoolRecovery, runner: str, stop_processes: Callable[[str], object]
) -> list[tuple[int, RecoveryOutcome]]:
    """Finish or re-queue the jobs whose runner died; return (id, what was done).

    Their processes may have outlived their runner: `stop_processes(job_url)` is
    called for each such job, its lock held, before anything reruns or reports it
    (the daemon passes `executors.orphans.kill_job_processes`).
    """
    recovered = []
    for entry in sorted(os.scandir(spool.dir("running")), key=lambda e: e.name):
        path = Path(entry.path)
        job_id = entry_job_id(path)
        if job_id is None:
            continue
        fd = lock_entry(path)
        if fd is None:
            continue  # a live runner holds it
        if (spool.dir("done") / str(job_id)).exists():
            path.unlink(missing_ok=True)
            os.close(fd)
            recovered.append((job_id, RecoveryOutcome.ALREADY_DONE))
            continue
        stop_processes(spool.job_url(job_id))
        if mode is SpoolRecovery.REQUEUE:
            shutil.rmtree(spool.dir("work") / str(job_id), ignore_errors=True)
            path.rename(spool.dir("pending") / path.name)
            os.close(fd)
            recovered.append((job_id, RecoveryOutcome.REQUEUED))
            continue
        (spool.dir("work") / str(job_id)).mkdir(exist_ok=True)
        spool._append_trace(
            job_id, "\nERROR: Job failed (system failure): the runner running it died\n"
        )
        spool.complete(
            Taken(Job(job_id, "", "", ""), fd, 0.0),
            SpoolStatus.FAILED,
            FailureReason.RUNNER_SYSTEM_FAILURE,
            duration=0.0,
            exit_code=None,
            runner=runner,
        )
        recovered.append((job_id, RecoveryOutcome.FAILED))
    return recovered
