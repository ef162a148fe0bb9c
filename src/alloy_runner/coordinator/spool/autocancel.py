"""GitLab's auto-cancel of redundant pipelines: a new commit on a ref cancels older pipelines.

`conservative` (GitLab's default): an older pipeline of the same ref (and another commit)
is canceled unless one of its jobs that already started is not `interruptible`.
`interruptible`: only the interruptible jobs of older pipelines are canceled. `none`: nothing.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from alloy_runner.coordinator.spool.records import PipelineJob, SpoolStatus

if TYPE_CHECKING:
    from alloy_runner.coordinator.spool.store import Spool

MODES = ("conservative", "interruptible", "none")
UNFINISHED = (SpoolStatus.WAITING, SpoolStatus.PENDING, SpoolStatus.MANUAL, SpoolStatus.RUNNING)


def auto_cancel(spool: Spool, pipeline_id: int, plan: dict[str, Any]) -> list[int]:
    """Cancel what the new pipeline `pipeline_id` makes redundant; return the canceled ids."""
    mode, ref, sha = plan.get("auto_cancel", "conservative"), plan.get("ref"), plan.get("sha")
    if mode == "none" or not ref:
        return []
    canceled: list[int] = []
    with os.scandir(spool.dir("pipelines")) as entries:
        older = sorted(
            int(stem)
            for e in entries
            if (stem := e.name.removesuffix(".json")).isdecimal() and int(stem) < pipeline_id
        )
    for other in older:
        try:
            data = json.loads((spool.dir("pipelines") / f"{other}.json").read_text())
        except (OSError, ValueError):
            continue
        if data.get("ref") != ref or data.get("sha") == sha:
            continue
        jobs = [job for _, stage in spool.pipeline(other) for job in stage]
        statuses = {job.id: spool.status(job.id) for job in jobs}
        if not any(s in UNFINISHED for s in statuses.values()):
            continue
        if mode == "conservative" and any(
            _started(statuses[j.id]) and not j.interruptible for j in jobs
        ):
            continue
        canceled += _cancel(spool, jobs, statuses, only_interruptible=mode == "interruptible")
    return canceled


def _started(status: SpoolStatus) -> bool:
    return status not in (
        *(SpoolStatus.WAITING, SpoolStatus.PENDING, SpoolStatus.MANUAL),
        *(SpoolStatus.SKIPPED, SpoolStatus.CANCELED, SpoolStatus.UNKNOWN),
    )


def _cancel(
    spool: Spool,
    jobs: list[PipelineJob],
    statuses: dict[int, SpoolStatus],
    *,
    only_interruptible: bool,
) -> list[int]:
    done = []
    for job in reversed(jobs):  # later jobs first: none of them is skipped for an earlier one
        if statuses[job.id] not in UNFINISHED:
            continue
        if statuses[job.id] is SpoolStatus.RUNNING and not job.interruptible:
            continue
        if only_interruptible and not job.interruptible:
            continue
        spool.cancel(job.id)
        done.append(job.id)
    return done
