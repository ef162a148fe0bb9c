"""What the spool writes and answers: its statuses, cancel and recovery results, result.json."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from alloy_runner.build.job import Job
from alloy_runner.build.states import BuildState, FailureReason


@dataclass
class Taken:
    """A job this process took from `pending/`, with the lock that says it is alive."""

    job: Job
    fd: int
    queued_seconds: float
    taken_at: float = 0.0


class SpoolStatus(StrEnum):
    """Where a job is, as the spool sees it: a directory while it has not ended, then its result."""

    WAITING = "waiting"  # a job whose needs or earlier stages have not ended yet
    MANUAL = "manual"  # a `when: manual` job, waiting for `alloy-runner play`
    PENDING = "pending"
    RUNNING = "running"
    SUCCESS = BuildState.SUCCESS.value
    FAILED = BuildState.FAILED.value
    CANCELED = BuildState.CANCELED.value
    TERMINATED = BuildState.TERMINATED.value
    TIMEDOUT = BuildState.TIMEDOUT.value
    SKIPPED = "skipped"  # a pipeline state, not a build state: the job never ran
    UNKNOWN = "unknown"  # no such job in the spool

    @classmethod
    def of(cls, state: BuildState) -> SpoolStatus:
        """Return the status a build that ended in `state` leaves in result.json."""
        return cls(state.value)

    @property
    def ended(self) -> bool:
        """Tell whether the job has ended (or is unknown): it will not change any more."""
        return self not in (
            SpoolStatus.WAITING,
            SpoolStatus.MANUAL,
            SpoolStatus.PENDING,
            SpoolStatus.RUNNING,
        )


class CancelResult(StrEnum):
    """What `cancel` did."""

    CANCELED = "canceled"  # it had not started: it ended as canceled at once
    CANCELING = "canceling"  # it runs: its runner was asked to stop it
    ENDED = "ended"  # it had ended already: nothing changed
    UNKNOWN = "unknown"  # the spool has no such job


@dataclass(frozen=True)
class Cancellation:
    """What `Spool.cancel` did, and the job's status after it."""

    result: CancelResult
    status: SpoolStatus

    def to_json(self, job_id: int) -> dict[str, Any]:
        return {"id": job_id, "result": self.result.value, "status": self.status.value}


class RecoveryOutcome(StrEnum):
    """What recovery did with a job whose runner died."""

    ALREADY_DONE = "already done"
    REQUEUED = "requeued"
    FAILED = "failed"


@dataclass(frozen=True)
class PipelineJob:
    """One job of a stored pipeline: what `advance` needs to decide whether and when it runs."""

    id: int
    name: str
    allow_failure: bool
    when: str  # the job's `when`: on_success, on_failure, always, manual or delayed
    needs: list[int] | None = None  # None: the job waits for every job of earlier stages
    start_in: float = 0.0  # seconds a `delayed` job waits once it may start
    retry: int = 0
    retry_when: list[str] = field(default_factory=lambda: ["always"])
    retry_exit_codes: list[int] = field(default_factory=list)
    resource_group: str | None = None
    allow_failure_exit_codes: list[int] = field(default_factory=list)
    interruptible: bool = False


@dataclass(frozen=True)
class JobResult:
    """A finished job's `done/<id>/result.json`."""

    id: int
    name: str
    stage: str
    pipeline_id: int | None
    status: SpoolStatus
    failure_reason: FailureReason | None
    duration: float
    exit_code: int | None
    runner: str
    started_at: float | None
    queued_seconds: float | None
    finished_at: float
    attempt: int = 1  # 2 or 3 when `retry` ran the job again

    @property
    def succeeded(self) -> bool:
        """Tell whether the job counts as passed for its pipeline (success, or not needed)."""
        return self.status in (SpoolStatus.SUCCESS, SpoolStatus.SKIPPED)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobResult:
        reason = data.get("failure_reason")
        return cls(
            id=int(data["id"]),
            name=str(data.get("name", "")),
            stage=str(data.get("stage", "")),
            pipeline_id=_optional_int(data.get("pipeline_id")),
            status=SpoolStatus(data["status"]),
            failure_reason=FailureReason(reason) if reason else None,
            duration=float(data.get("duration") or 0.0),
            exit_code=_optional_int(data.get("exit_code")),
            runner=str(data.get("runner", "")),
            started_at=_optional_float(data.get("started_at")),
            queued_seconds=_optional_float(data.get("queued_seconds")),
            finished_at=float(data.get("finished_at") or 0.0),
            attempt=int(data.get("attempt") or 1),
        )

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = self.status.value
        data["failure_reason"] = self.failure_reason.value if self.failure_reason else None
        return data

    @classmethod
    def read(cls, path: Path) -> JobResult:
        return cls.from_json(json.loads(path.read_text()))


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


PRIVATE_FILE = 0o600  # a job payload can hold masked variables in plain text
PRIVATE_DIR = 0o700


def make_private_dir(path: Path) -> None:
    """Make `path` a directory only its owner can enter (also one an older version made)."""
    path.mkdir(mode=PRIVATE_DIR, exist_ok=True)
    status = path.stat()
    if status.st_mode & 0o077 and status.st_uid == os.geteuid():
        path.chmod(PRIVATE_DIR)


def write_json(path: Path, data: Any) -> None:
    """Write `data` to `path` atomically (readers see the old file or the whole new one),
    readable by its owner only."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
    with os.fdopen(fd, "w") as handle:
        handle.write(json.dumps(data, indent=1))
    tmp.rename(path)


def pipeline_of_payload(payload: dict[str, Any]) -> int | None:
    """Return the pipeline id a job payload carries in CI_PIPELINE_ID, if any."""
    for variable in payload.get("variables") or []:
        if isinstance(variable, dict) and variable.get("key") == "CI_PIPELINE_ID":
            value = str(variable.get("value", ""))
            return int(value) if value.isdecimal() else None
    return None


def pipeline_of(job_json: Path) -> int | None:
    try:
        return pipeline_of_payload(json.loads(job_json.read_text()))
    except (OSError, ValueError):
        return None


def public_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """Return the payload without its token and with masked values hidden."""
    public = dict(payload)
    public.pop("token", None)
    public["variables"] = [
        {**variable, "value": "[MASKED]"}
        if isinstance(variable, dict) and variable.get("masked")
        else variable
        for variable in payload.get("variables") or []
    ]
    return public


def remove_entry(path: Path) -> None:
    """Remove a spool entry, also one that a hand put there as a directory."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def lock_entry(path: Path) -> int | None:
    """Open `path` and take its flock without waiting; None if it is gone or held."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def entry_job_id(path: Path) -> int | None:
    """Return the job id of a spool entry's name (`12.json` -> 12), or None."""
    stem = path.name.removesuffix(".json")
    return int(stem) if stem.isdecimal() else None
