"""The local spool: the embedded default job source, a directory that several runners share.

Layout under one root:

    ids                 the next job/pipeline id (taken under flock)
    pipelines/<p>.json  a pipeline's stages and jobs, written once by `submit`
    waiting/<id>.json   a job of a later stage, not runnable yet
    pending/<id>.json   a runnable job
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
from alloy_runner.config.model import SpoolRecovery
from alloy_runner.coordinator.spool.records import (
    PRIVATE_DIR,
    Cancellation,
    CancelResult,
    JobResult,
    PipelineJob,
    RecoveryOutcome,
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
from alloy_runner.exceptions import JobPayloadError
from alloy_runner.executors.orphans import kill_job_processes

log = logging.getLogger(__name__)
__all__ = ["PipelineJob", "Spool", "Taken"]

DIRS = ("pipelines", "waiting", "pending", "running", "work", "done", "cancel")


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
            first = int(text) if text.isdigit() else 1
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
        run: dict[str, Any] | None = None,
    ) -> None:
        """Store a pipeline and its jobs, then make its first runnable stage pending.

        `run` (name, trace) describes the pipeline run for its span (`spool.runs`).
        """
        self.ensure()
        for job_id, payload in payloads.items():
            write_json(self.dir("waiting") / f"{job_id}.json", payload)
        plan = {
            "id": pipeline_id,
            "created_at": time.time(),
            "stages": [{"name": name, "jobs": [vars(j) for j in jobs]} for name, jobs in stages],
            **(run or {}),
        }
        write_json(self.dir("pipelines") / f"{pipeline_id}.json", plan)
        self.advance(pipeline_id)

    def pipeline(self, pipeline_id: int) -> list[tuple[str, list[PipelineJob]]]:
        data = json.loads((self.dir("pipelines") / f"{pipeline_id}.json").read_text())
        return [(s["name"], [PipelineJob(**j) for j in s["jobs"]]) for s in data["stages"]]

    def result(self, job_id: int) -> JobResult | None:
        """Return a finished job's result.json, or None while it has not finished."""
        try:
            return JobResult.read(self.dir("done") / str(job_id) / "result.json")
        except FileNotFoundError:
            return None

    def status(self, job_id: int) -> SpoolStatus:
        """Return a job's state as the spool sees it: waiting, pending, running or its result."""
        result = self.result(job_id)
        if result is not None:
            return result.status
        for status in (SpoolStatus.RUNNING, SpoolStatus.PENDING, SpoolStatus.WAITING):
            if (self.dir(status.value) / f"{job_id}.json").exists():
                return status
        return SpoolStatus.UNKNOWN

    def advance(self, pipeline_id: int) -> None:
        """Make the jobs of the next stage pending, or skip them, once earlier stages ended.

        Idempotent and safe to run from several processes at once: every move is
        a rename that only one of them can win.
        """
        failed = False
        # One listing instead of a look per job: a finished job of a big stage stays cheap.
        with os.scandir(self.dir("waiting")) as entries:
            still_waiting = {entry.name for entry in entries}
        for _stage, jobs in self.pipeline(pipeline_id):
            for job in jobs:
                if f"{job.id}.json" not in still_waiting:
                    continue
                waiting = self.dir("waiting") / f"{job.id}.json"
                runnable = job.when == "always" or (
                    (job.when == "on_failure") == failed and job.when != "manual"
                )
                if runnable:
                    with contextlib.suppress(FileNotFoundError):
                        waiting.rename(self.dir("pending") / waiting.name)
                else:
                    self._close_unrun(
                        waiting, SpoolStatus.SKIPPED, None, "the pipeline did not need it"
                    )
            # Jobs are taken in id order, so the last of a stage is the likeliest to be unfinished:
            # looking from the end, an unfinished stage is found at once, not after every result.
            results = []
            for job in reversed(jobs):
                result = self.result(job.id)
                if result is None:
                    return
                results.append(result)
            results.reverse()
            failed = failed or any(
                not result.succeeded and not job.allow_failure
                for job, result in zip(jobs, results, strict=True)
            )

    def cancel(self, job_id: int) -> Cancellation:
        """Cancel a job: a waiting or pending one at once, a running one through its runner."""
        while True:
            for name in ("pending", "waiting"):
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
        """Take the oldest pending job that no other runner is taking."""
        for job_id in self.pending_ids():
            pending = self.dir("pending") / f"{job_id}.json"
            fd = lock_entry(pending)
            if fd is None:
                continue
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

    def recover(self, mode: SpoolRecovery, runner: str) -> list[tuple[int, RecoveryOutcome]]:
        """Finish or re-queue the jobs whose runner died; return (id, what was done)."""
        recovered = []
        for entry in sorted(os.scandir(self.dir("running")), key=lambda e: e.name):
            path = Path(entry.path)
            job_id = entry_job_id(path)
            if job_id is None:
                continue
            fd = lock_entry(path)
            if fd is None:
                continue  # a live runner holds it
            if (self.dir("done") / str(job_id)).exists():
                path.unlink(missing_ok=True)
                os.close(fd)
                recovered.append((job_id, RecoveryOutcome.ALREADY_DONE))
                continue
            # Its processes outlived their runner: stop them before anything reruns or reports it.
            kill_job_processes(self.job_url(job_id))
            if mode is SpoolRecovery.REQUEUE:
                shutil.rmtree(self.dir("work") / str(job_id), ignore_errors=True)
                path.rename(self.dir("pending") / path.name)
                os.close(fd)
                recovered.append((job_id, RecoveryOutcome.REQUEUED))
                continue
            (self.dir("work") / str(job_id)).mkdir(exist_ok=True)
            self._append_trace(
                job_id, "\nERROR: Job failed (system failure): the runner running it died\n"
            )
            self.complete(
                Taken(Job(job_id, "", "", ""), fd, 0.0),
                SpoolStatus.FAILED,
                FailureReason.RUNNER_SYSTEM_FAILURE,
                duration=0.0,
                exit_code=None,
                runner=runner,
            )
            recovered.append((job_id, RecoveryOutcome.FAILED))
        return recovered

    def job_url(self, job_id: int) -> str:
        """Return the address of a job in this spool (its work directory)."""
        return (self.dir("work") / str(job_id)).as_uri()
