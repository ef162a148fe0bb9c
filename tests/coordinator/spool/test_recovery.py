"""Spool recovery in-process: the caller's `stop_processes` runs first, the lock held; live jobs
are left alone."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

from alloy_runner.config.model import SpoolRecovery
from alloy_runner.coordinator.spool.records import RecoveryOutcome
from alloy_runner.coordinator.spool.recovery import recover
from alloy_runner.coordinator.spool.store import Spool


def running_job(spool: Spool, job_id: int) -> Path:
    spool.ensure()
    path = spool.dir("running") / f"{job_id}.json"
    path.write_text(json.dumps({"id": job_id}))
    return path


def locked_by_someone(path: Path) -> bool:
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def test_processes_are_stopped_before_the_job_is_requeued(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    path = running_job(spool, 7)
    seen: list[tuple[str, bool, bool]] = []

    def stop_processes(job_url: str) -> None:
        seen.append((job_url, path.exists(), locked_by_someone(path)))

    assert recover(spool, SpoolRecovery.REQUEUE, "r", stop_processes) == [
        (7, RecoveryOutcome.REQUEUED)
    ]
    # Called once, with the job still in running/ and its lock held by recover.
    assert seen == [(spool.job_url(7), True, True)]
    assert spool.pending_ids() == [7]


def test_a_job_a_live_runner_holds_is_left_alone(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    path = running_job(spool, 8)
    seen: list[str] = []
    fd = os.open(path, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)  # as the runner running it does
    try:
        assert recover(spool, SpoolRecovery.FAIL, "r", seen.append) == []
    finally:
        os.close(fd)
    assert seen == []
    assert path.exists()
