"""How a spooled pipeline moves on: which waiting jobs start, wait for a person, or are skipped.

A job with `needs` starts once the jobs it needs have finished, whatever their stage;
`needs: []` starts at once. Any other job waits for every job of the earlier stages.
A job that failed counts as failed unless it was allowed to (`allow_failure`, or one of
its `allow_failure:exit_codes`). A manual job that may fail does not hold up later
stages while it waits to be played; one that may not (a rule made it manual) does.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from alloy_runner.coordinator.spool import groups
from alloy_runner.coordinator.spool.records import JobResult, PipelineJob


@dataclass
class Snapshot:
    """One look at where a pipeline's jobs are (one listing per directory)."""

    waiting: set[int]
    manual: set[int]
    done: set[int]
    read_result: Callable[[int], JobResult | None]
    results: dict[int, JobResult | None] = field(default_factory=dict)

    def result(self, job_id: int) -> JobResult | None:
        if job_id not in self.results:
            self.results[job_id] = self.read_result(job_id)
        return self.results[job_id]

    def finished(self, job: PipelineJob, *, for_stage: bool) -> bool:
        """Whether `job` no longer holds others back (a manual job that may fail: for stages)."""
        if job.id in self.done:
            return True
        return for_stage and job.id in self.manual and job.allow_failure

    def failed(self, job: PipelineJob) -> bool:
        result = self.result(job.id) if job.id in self.done else None
        if result is None or result.succeeded or job.allow_failure:
            return False
        code = result.exit_code
        return not (job.allow_failure_exit_codes and code in job.allow_failure_exit_codes)


def stages_of(plan: dict[str, Any]) -> list[tuple[str, list[PipelineJob]]]:
    """The stages and jobs of a pipeline's plan (keys of later versions are left out)."""
    known = {f.name for f in fields(PipelineJob)}
    return [
        (s["name"], [PipelineJob(**{k: v for k, v in j.items() if k in known}) for j in s["jobs"]])
        for s in plan["stages"]
    ]


def ids_in(directory: Path) -> set[int]:
    """The job ids of a spool directory's entries (none when a spool made by an older
    version does not have the directory yet)."""
    try:
        with os.scandir(directory) as entries:
            return {int(s) for e in entries if (s := e.name.removesuffix(".json")).isdecimal()}
    except FileNotFoundError:
        return set()


def next_moves(
    stages: list[tuple[str, list[PipelineJob]]], snap: Snapshot
) -> list[tuple[PipelineJob, str]]:
    """Return what to do now with the waiting jobs that may move: run, manual, delay or skip."""
    by_id = {job.id: job for _, jobs in stages for job in jobs}
    moves: list[tuple[PipelineJob, str]] = []
    earlier_finished, earlier_failed = True, False
    for _stage, jobs in stages:
        for job in jobs:
            if job.id not in snap.waiting:
                continue
            if job.needs is not None:
                needed = [by_id[i] for i in job.needs if i in by_id]
                ready = all(snap.finished(n, for_stage=False) for n in needed)
                failed = any(snap.failed(n) for n in needed)
            else:
                ready, failed = earlier_finished, earlier_failed
            if ready:
                moves.append((job, _move(job, failed)))
        earlier_finished = earlier_finished and all(snap.finished(j, for_stage=True) for j in jobs)
        earlier_failed = earlier_failed or any(snap.failed(j) for j in jobs)
    return moves


def _move(job: PipelineJob, failed: bool) -> str:
    if job.when == "always":
        return "run"
    if job.when == "on_failure":
        return "run" if failed else "skip"
    if failed:
        return "skip"
    if job.when == "manual":
        return "manual"
    if job.when == "delayed":
        return "delay"
    return "run"


def retry_wanted(job: PipelineJob, attempt: int, reason: str | None, exit_code: int | None) -> bool:
    """Whether a failed attempt is retried, as GitLab's `retry: max, when, exit_codes` say."""
    if attempt > job.retry or reason in (None, "job_canceled"):
        return False
    kinds = {reason}
    if reason == "job_execution_timeout":
        kinds.add("stuck_or_timeout_failure")
    if "always" not in job.retry_when and not kinds & set(job.retry_when):
        return False
    return not job.retry_exit_codes or exit_code in job.retry_exit_codes


def may_start(root: Path, job_id: int, now: float) -> bool:
    """Whether a pending job's delay is over and its resource group is free (taking it)."""
    scheduled = root / "scheduled" / str(job_id)
    if scheduled.exists() and not_before(scheduled) > now:
        return False
    group = groups.group_of(root, job_id)
    return group is None or groups.acquire(root, job_id, group)


def not_before(path: Path) -> float:
    """The time a delayed job may start (0: now)."""
    try:
        return float(path.read_text() or 0)
    except (OSError, ValueError):
        return 0.0


def schedule(path: Path, seconds: float) -> None:
    path.write_text(f"{time.time() + seconds:.3f}")


def unschedule(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
