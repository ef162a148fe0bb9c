"""A spool pipeline as one run: its trace context, given at submit, and its end, seen once.

The runner is the controller of a spool pipeline, so it is the one to emit
the pipeline-run span. That span is opened across jobs that run at different
times, perhaps in different processes, so it is not held open: `submit`
draws the run's trace id and span id and writes them into the pipeline's
record and, as `ALLOY_PIPELINE_TRACEPARENT`, into every job, whose span is
then a child of it; whichever process completes the pipeline's last job
claims its end (an exclusive create of `pipelines/<id>.ended`, which only
one can win) and emits the span with the ids, start and end it was given.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from alloy_runner.build.states import FailureReason
from alloy_runner.coordinator.spool.records import JobResult, SpoolStatus

if TYPE_CHECKING:
    from alloy_runner.coordinator.spool.store import Spool

_TRACEPARENT = re.compile(r"00-(?P<trace>[0-9a-f]{32})-(?P<span>[0-9a-f]{16})-[0-9a-f]{2}")
_CANCELED = (SpoolStatus.CANCELED, SpoolStatus.TERMINATED)
_LIVE = (
    *(SpoolStatus.WAITING, SpoolStatus.MANUAL, SpoolStatus.PENDING, SpoolStatus.RUNNING),
    SpoolStatus.UNKNOWN,
)


@dataclass(frozen=True)
class RunTrace:
    """The pipeline-run span's identity: drawn at submit, used by every job and at the end."""

    trace_id: str  # 32 hex digits
    span_id: str  # 16 hex digits
    parent_span_id: str = ""  # the span of a TRACEPARENT given to `submit`, if any

    @property
    def traceparent(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-01"

    @classmethod
    def new(cls, given: str | None) -> RunTrace:
        """Draw the run's ids; a valid `given` TRACEPARENT makes the run its child."""
        match = _TRACEPARENT.fullmatch((given or "").strip().lower())
        if match and set(match["trace"]) != {"0"} and set(match["span"]) != {"0"}:
            return cls(match["trace"], secrets.token_hex(8), match["span"])
        return cls(secrets.token_hex(16), secrets.token_hex(8))


@dataclass(frozen=True)
class PipelineRun:
    """A spool pipeline that ended: what its pipeline-run span says."""

    id: int
    name: str
    created_at: float
    ended_at: float
    result: str  # cicd.pipeline.result: success, failure, error, timeout, cancellation, skip
    error_type: str | None
    trace: RunTrace
    url: str
    started_at: float | None = None  # when its first job was taken (None: none ran)
    errors: tuple[str, ...] = ()  # the failure reason of each job that failed, allowed or not


def run_result(results: list[tuple[bool, JobResult]]) -> tuple[str, str | None]:
    """Return the pipeline's result and error type from its jobs' (allow_failure, result)."""
    statuses = [r.status for _, r in results]
    if any(s in _CANCELED for s in statuses):
        return "cancellation", "canceled"
    for allowed, result in results:
        if allowed or result.succeeded:
            continue
        reason = _reason(result)
        if result.status is SpoolStatus.TIMEDOUT:
            return "timeout", reason
        if result.failure_reason is FailureReason.SCRIPT_FAILURE:
            return "failure", reason
        return "error", reason
    if statuses and all(s is SpoolStatus.SKIPPED for s in statuses):
        return "skip", None
    return "success", None


def _reason(result: JobResult) -> str:
    return result.failure_reason.value if result.failure_reason else result.status.value


def ended_run(spool: Spool, pipeline_id: int) -> PipelineRun | None:
    """Return the pipeline's run if all its jobs have ended and this caller is the first to
    see it (None otherwise, and for a pipeline without a run trace)."""
    path = spool.dir("pipelines") / f"{pipeline_id}.json"
    plan = json.loads(path.read_text())
    trace = plan.get("trace")
    if not isinstance(trace, dict):
        return None
    results = []
    # From the last job back: an unfinished pipeline is found at its first look, so the check
    # after every job of a big pipeline costs one read, not one per job.
    for stage in reversed(plan["stages"]):
        for job in reversed(stage["jobs"]):
            ended = spool.result(int(job["id"]))
            if ended is None:
                return None
            results.append((bool(job["allow_failure"]), ended))
    results.reverse()
    try:
        os.close(os.open(path.with_suffix(".ended"), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return None
    result, error_type = run_result(results)
    last = max((r.finished_at for _, r in results), default=0.0)
    starts = [r.started_at for _, r in results if r.started_at]
    errors = tuple(_reason(r) for _, r in results if not r.succeeded and r.status not in _CANCELED)
    return PipelineRun(
        id=pipeline_id,
        name=str(plan.get("name") or ""),
        created_at=float(plan["created_at"]),
        ended_at=last or time.time(),
        result=result,
        error_type=error_type,
        trace=RunTrace(**trace),
        url=path.as_uri(),
        started_at=min(starts) if starts else None,
        errors=errors,
    )


class ActiveRuns:
    """The spool's pipelines that have not ended, by name and state, for `cicd.pipeline.run.active`.

    Only pipelines not marked ended are read, and one found finished is remembered,
    so a collection costs a directory listing and a look at each live pipeline.
    """

    def __init__(self, spool: Spool) -> None:
        self.spool = spool
        self._finished: set[str] = set()

    def __call__(self) -> list[tuple[str, str]]:
        """Return (pipeline name, run state) of each active run: pending or executing."""
        directory = self.spool.dir("pipelines")
        try:
            names = {p.name for p in directory.iterdir()}
        except OSError:
            return []
        out = []
        for name in sorted(names):
            stem = name.removesuffix(".json")
            if stem == name or f"{stem}.ended" in names or stem in self._finished:
                continue
            try:
                state = self._state(json.loads((directory / name).read_text()))
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if state is None:
                self._finished.add(stem)
            else:
                out.append(state)
        return out

    def _state(self, plan: dict[str, Any]) -> tuple[str, str] | None:
        statuses = [self.spool.status(int(j["id"])) for s in plan["stages"] for j in s["jobs"]]
        if "trace" not in plan or all(s not in _LIVE for s in statuses):
            return None
        waiting = (SpoolStatus.WAITING, SpoolStatus.MANUAL, SpoolStatus.PENDING)
        executing = any(s not in waiting for s in statuses)
        return str(plan.get("name") or ""), "executing" if executing else "pending"
