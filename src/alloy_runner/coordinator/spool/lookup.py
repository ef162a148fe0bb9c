"""Where a job is in the spool, looked up while other processes move it.

A job moves by rename: waiting/ -> manual/ -> pending/ -> running/ -> done/.
A look at one directory after another races those renames: looked at in the
opposite order, a job that moves from pending/ to running/ between the two looks
is in neither when looked for, and reads as unknown. So the places are looked
at in the order a job moves forward (MOVE_ORDER, then done/): a job that moves
forward between two looks is found where it went. A job can also move back (a
retry or a recovery puts it from running/ to pending/, a runner that cannot make
its work directory puts it back): then this pass missed it, and the next finds it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from alloy_runner.coordinator.spool.records import SpoolStatus

if TYPE_CHECKING:
    from alloy_runner.coordinator.spool.store import Spool

# Where a job is before it ends, in the order it moves forward (done/ comes after).
MOVE_ORDER = (SpoolStatus.WAITING, SpoolStatus.MANUAL, SpoolStatus.PENDING, SpoolStatus.RUNNING)
PASSES = 3  # looks for a job found nowhere (it moved back meanwhile) before it is unknown


def job_status(spool: Spool, job_id: int) -> SpoolStatus:
    """Return a job's state: the directory it waits or runs in, or its result."""
    for _ in range(PASSES):
        status = _look_up(spool, job_id)
        if status is not SpoolStatus.UNKNOWN:
            return status
    return SpoolStatus.UNKNOWN


def _look_up(spool: Spool, job_id: int) -> SpoolStatus:
    for status in MOVE_ORDER:
        if entry_exists(spool.dir(status.value), job_id):
            # A runner that died between writing done/ and removing its entry in
            # running/ leaves both: the result is the truth.
            result = spool.result(job_id) if status is SpoolStatus.RUNNING else None
            return result.status if result is not None else status
    result = spool.result(job_id)
    return result.status if result is not None else SpoolStatus.UNKNOWN


def entry_exists(directory: Path, job_id: int) -> bool:
    """Tell whether `directory` holds the job's entry: one look (the tests' seam)."""
    return (directory / f"{job_id}.json").exists()
