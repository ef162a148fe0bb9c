"""The local spool: the embedded default job source, a directory that several runners share.

Layout under one root:

    ids                 the next job/pipeline id (taken under flock)
    pipelines/<p>.json  a pipeline's stages and jobs, written once by `submit`
    waiting/<id>.json   a job whose needs or earlier stages have not ended yet
    manual/<id>.json    a `when: manual` job, waiting for `alloy-runner play`
    pending/<id>.json   a runnable job (scheduled/<id>: a delayed job's start time)
    running/<id>.json   a job a runner has taken; that runner holds an flock on it
    work/<id>/          the live log and artifacts of a running job
    done/<id>/          result.json, trace.log and artifacts.zip of a finished job
    cancel/<id>         a request to cancel a running job

A job moves between directories by atomic rename, so two runners never take
the same job, and the flock tells a live owner from a dead one: the kernel
drops it when a process dies, however it dies.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

from alloy_runner.build.job import Job
from alloy_runner.build.states import FailureReason
from alloy_runner.coordinator.spool import groups
from alloy_runner.coordinator.spool.autocancel import auto_cancel
from alloy_runner.coordinator.spool.flow import (
    Snapshot,
    ids_in,
    may_start,
    next_moves,
    schedule,
    stages_of,
    unschedule,
)
from alloy_runner.coordinator.spool.lookup import job_status
from alloy_runner.coordinator.spool.records import (
    PRIVATE_DIR,
    Cancellation,
    CancelResult,
    JobResult,
    PipelineJob,
    SpoolStatus,
    Taken,
    entry_job_id,
    lock_entry,
    make_private_dir,
    pipeline_of,
    pipeline_of_payload,
    public_payload,
    remove_entry,
    write_json,
)
from alloy_runner.coordinator.spool.recovery import retry
from alloy_runner.exceptions import JobPayloadError

log = logging.getLogger(__name__)
__all__ = ["PipelineJob", "Spool", "Taken"]

DIRS = (
    *("pipelines", "waiting", "pending", "running", "work", "done", "cancel", "manual"),
    *("scheduled", "groups", "held", "attempts"),
)


class Spool:
    """The spool directory: what `submit` writes and every runner on this host reads."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def dir(self, name: str) -> Path:
        return self.root / name

    def ensure(self) -> None:
        """Make the spool's directories, private to their owner (jobs can hold secrets)."""
        self.root.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
        for name in ("", *DIRS):
            make_private_dir(self.root / name)

    # --- submit side ---------------------------------------------------------------------

    def allocate_ids(self, count: int) -> list[int]:
        """Return `count` fresh ids, unique across every process sharing the spool."""
        self.ensure()
        with open(self.root / "ids", "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            handle.seek(0)
            text = handle.read().strip()
            first = int(text) if text.isdecimal() else 1
            handle.seek(0)
            handle.truncate()
            handle.write(str(first + count))
            handle.flush()
            os.fsync(handle.fileno())
        return list(range(first, first + count))

    def add_pipeline(
        self,
        pipeline_id: int,
        stages: list[tuple[str, list[PipelineJob]]],
        payloads: dict[int, dict[str, Any]],
        about: dict[str, Any] | None = None,
    ) -> list[int]:
        """Store a pipeline and its jobs, then make its first runnable jobs pending.

        `about` describes the run: `name` and `trace` for its span (`spool.runs`), and
        `ref`, `sha` and `auto_cancel`: then the older pipelines it makes redundant are
        canceled; their canceled job ids are returned.
        """
        self.ensure()
        for job_id, payload in payloads.items():
            write_json(self.dir("waiting") / f"{job_id}.json", payload)
        plan = {
            "id": pipeline_id,
            "created_at": time.time(),
            **(about or {}),
            "stages": [{"name": name, "jobs": [vars(j) for j in jobs]} for name, jobs in stages],
        }
        write_json(self.dir("pipelines") / f"{pipeline_id}.json", plan)
        self.advance(pipeline_id)
        return auto_cancel(self, pipeline_id, plan)

    def pipeline(self, pipeline_id: int) -> list[tuple[str, list[PipelineJob]]]:
        return stages_of(json.loads((self.dir("pipelines") / f"{pipeline_id}.json").read_text()))

    def result(self, job_id: int) -> JobResult | None:
        """Return a finished job's result.json, or None while it has not finished."""
        try:
            return JobResult.read(self.dir("done") / str(job_id) / "result.json")
        except FileNotFoundError:
            return None

    def status(self, job_id: int) -> SpoolStatus:
        """Return a job's state as the spool sees it: waiting, pending, running or its result.

        Safe while other processes move the job (coordinator/spool/lookup.py).
        """
        return job_status(self, job_id)

    def advance(self, pipeline_id: int) -> None:
        """Start, hold for a person, delay or skip the waiting jobs that may move now.

        Idempotent and safe to run from several processes at once: every move is
        a rename that only one of them can win.
        """
        stages = self.pipeline(pipeline_id)
        for _ in range(1 + sum(len(jobs) for _, jobs in stages)):  # each round moves a job
            snap = Snapshot(
                waiting=ids_in(self.dir("waiting")),
                manual=ids_in(self.dir("manual")),
                done=ids_in(self.dir("done")),
                read_result=self.result,
            )
            moves = next_moves(stages, snap)
            if not moves:
                return
            for job, move in moves:
                self._move(job, move)

    def _move(self, job: PipelineJob, move: str) -> None:
        waiting = self.dir("waiting") / f"{job.id}.json"
        if move == "skip":
            self._close_unrun(waiting, SpoolStatus.SKIPPED, None, "the pipeline did not need it")
            return
        if job.resource_group:
            groups.mark(self.root, job.id, job.resource_group)
        if move == "delay":
            schedule(self.dir("scheduled") / str(job.id), job.start_in)
        target = self.dir("manual" if move == "manual" else "pending") / waiting.name
        with contextlib.suppress(FileNotFoundError):
            waiting.rename(target)

    def play(self, job_id: int) -> str:
        """Start a manual job (or a delayed one at once); return what happened."""
        manual = self.dir("manual") / f"{job_id}.json"
        try:
            manual.rename(self.dir("pending") / manual.name)
        except FileNotFoundError:
            if (self.dir("scheduled") / str(job_id)).exists():
                unschedule(self.dir("scheduled") / str(job_id))
                return "started"
            status = self.status(job_id)
            return "unknown" if status is SpoolStatus.UNKNOWN else f"not manual ({status})"
        return "started"

    def cancel(self, job_id: int) -> Cancellation:
        """Cancel a job: a waiting or pending one at once, a running one through its runner."""
        while True:
            for name in ("pending", "manual", "waiting"):
                path = self.dir(name) / f"{job_id}.json"
                why = "canceled before it started"
                if self._close_unrun(path, SpoolStatus.CANCELED, FailureReason.JOB_CANCELED, why):
                    self._advance_of(job_id)
                    return Cancellation(CancelResult.CANCELED, SpoolStatus.CANCELED)
            if (self.dir("running") / f"{job_id}.json").exists():
                (self.dir("cancel") / str(job_id)).touch()
                return Cancellation(CancelResult.CANCELING, SpoolStatus.RUNNING)
            status = self.status(job_id)
            if status is SpoolStatus.UNKNOWN:
                return Cancellation(CancelResult.UNKNOWN, status)
            if status.ended:
                return Cancellation(CancelResult.ENDED, status)
            # Another process held the job's lock while it moved it (a runner taking it): again.

    def _close_unrun(
        self, path: Path, status: SpoolStatus, reason: FailureReason | None, why: str
    ) -> bool:
        """Move a job that never ran straight to done/; False if another process got it."""
        fd = lock_entry(path)
        if fd is None:
            return False
        try:
            job_id = entry_job_id(path)
            work = self.dir("work") / str(job_id)
            try:
                path.rename(self.dir("running") / path.name)
            except FileNotFoundError:
                return False
            work.mkdir(parents=True, exist_ok=True)
            (work / "trace.log").write_text(f"Job {status}: {why}\n")
            payload = json.loads((self.dir("running") / path.name).read_text())
            self._complete(
                job_id or 0, payload, status, reason, duration=0.0, exit_code=None, runner=""
            )
            return True
        finally:
            os.close(fd)

    def _advance_of(self, job_id: int) -> None:
        pipeline = pipeline_of(self.dir("done") / str(job_id) / "job.json")
        if pipeline is not None:
            self.advance(pipeline)

    # --- runner side ---------------------------------------------------------------------

    def pending_ids(self) -> list[int]:
        ids = (entry_job_id(Path(e.name)) for e in os.scandir(self.dir("pending")))
        return sorted(i for i in ids if i is not None)

    def take(self) -> Taken | None:
        """Take the oldest pending job that no other runner is taking and that may start."""
        now = time.time()
        for job_id in self.pending_ids():
            pending = self.dir("pending") / f"{job_id}.json"
            if not may_start(self.root, job_id, now):
                continue
            fd = lock_entry(pending)
            if fd is None:
                continue
            unschedule(self.dir("scheduled") / str(job_id))
            try:
                queued = time.time() - os.fstat(fd).st_ctime
                running = self.dir("running") / pending.name
                pending.rename(running)
            except FileNotFoundError:
                os.close(fd)
                continue
            try:
                (self.dir("work") / str(job_id)).mkdir(exist_ok=True)
            except OSError:  # a full disk: the job goes back, untouched, for a later try
                running.rename(pending)
                os.close(fd)
                raise
            try:
                job = Job.from_payload(json.loads(running.read_text()))
            except (OSError, ValueError, JobPayloadError) as exc:
                # A directory, unreadable bytes or JSON that is no job: it fails, once, clearly.
                log.error("job %d: the spool entry %s is not a job: %s", job_id, running, exc)
                self._append_trace(job_id, f"ERROR: the job's payload is malformed: {exc}\n")
                self.complete(
                    Taken(Job(job_id, "", "", ""), fd, 0.0),
                    SpoolStatus.FAILED,
                    FailureReason.RUNNER_CONFIGURATION_ERROR,
                    duration=0.0,
                    exit_code=None,
                    runner="",
                )
                continue
            return Taken(job, fd, max(0.0, queued), time.time())
        return None

    def trace_path(self, job_id: int) -> Path:
        return self.dir("work") / str(job_id) / "trace.log"

    def _append_trace(self, job_id: int, text: str) -> None:
        with open(self.trace_path(job_id), "a") as handle:
            handle.write(text)

    def canceled(self, job_id: int) -> bool:
        return (self.dir("cancel") / str(job_id)).exists()

    def complete(
        self,
        taken: Taken,
        status: SpoolStatus,
        reason: FailureReason | None,
        *,
        duration: float,
        exit_code: int | None,
        runner: str,
    ) -> None:
        """Record a taken job's result, move it to done/, release it, advance its pipeline."""
        running = self.dir("running") / f"{taken.job.id}.json"
        try:
            payload = json.loads(running.read_text())
        except (OSError, ValueError):
            payload = None
        if not isinstance(payload, dict):
            payload = {"id": taken.job.id}
        if status is SpoolStatus.FAILED and retry(self, taken, payload, reason, exit_code):
            return
        try:
            self._complete(
                taken.job.id,
                payload,
                status,
                reason,
                duration=duration,
                exit_code=exit_code,
                runner=runner,
                taken=(taken.taken_at, taken.queued_seconds) if taken.taken_at else None,
            )
        finally:
            os.close(taken.fd)
        pipeline = pipeline_of_payload(payload)
        if pipeline is not None:
            self.advance(pipeline)

    def attempt(self, job_id: int) -> int:
        """The number of the job's current attempt (1 until it is retried)."""
        try:
            return int((self.dir("attempts") / str(job_id)).read_text())
        except (OSError, ValueError):
            return 1

    def _complete(
        self,
        job_id: int,
        payload: dict[str, Any],
        status: SpoolStatus,
        reason: FailureReason | None,
        *,
        duration: float,
        exit_code: int | None,
        runner: str,
        taken: tuple[float, float] | None = None,
    ) -> None:
        work = self.dir("work") / str(job_id)
        work.mkdir(parents=True, exist_ok=True)
        info = payload.get("job_info") or {}
        write_json(work / "job.json", public_payload(payload))
        result = JobResult(
            id=job_id,
            name=info.get("name", ""),
            stage=info.get("stage", ""),
            pipeline_id=pipeline_of_payload(payload),
            status=status,
            failure_reason=reason,
            duration=round(duration, 6),
            exit_code=exit_code,
            runner=runner,
            started_at=taken[0] if taken else None,
            queued_seconds=round(taken[1], 6) if taken else None,
            finished_at=time.time(),
            attempt=self.attempt(job_id),
        )
        write_json(work / "result.json", result.to_json())
        done = self.dir("done") / str(job_id)
        if done.exists():  # a crash after the rename and before the unlink
            shutil.rmtree(work, ignore_errors=True)
        else:
            work.rename(done)
        remove_entry(self.dir("running") / f"{job_id}.json")
        with contextlib.suppress(FileNotFoundError):
            (self.dir("cancel") / str(job_id)).unlink()
        groups.release(self.root, job_id)
        unschedule(self.dir("scheduled") / str(job_id))

    def job_url(self, job_id: int) -> str:
        """Return the address of a job in this spool (its work directory)."""
        return (self.dir("work") / str(job_id)).as_uri()
