"""Spool.status while another process moves the job: the move is forced between two looks.

Each test wraps the one look at a directory (lookup.entry_exists) so that, at
the look named, the real Spool code moves the job (take, complete, retry) just
before the look is made: the race the two-runner e2e test hit now and then,
made to happen every time, in-process.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from alloy_runner.build.states import FailureReason
from alloy_runner.coordinator.spool import lookup
from alloy_runner.coordinator.spool.records import SpoolStatus
from alloy_runner.coordinator.spool.store import Spool, Taken
from alloy_runner.pipeline.ci_yaml import parse_pipeline
from alloy_runner.pipeline.repo import Repo
from alloy_runner.pipeline.submit import submit

Look = Callable[[Path, int], bool]


def one_job(tmp_path: Path, text: str = "only: {script: x}\n") -> tuple[Spool, int]:
    spool = Spool(tmp_path / "spool")
    repo = Repo(root=tmp_path)
    spec = parse_pipeline(textwrap.dedent(text), ".alloy-ci.yml", repo)
    _, planned = submit(spool, spec, repo)
    (job,) = planned
    return spool, job.job.id


def move_at(
    monkeypatch: pytest.MonkeyPatch, directory: str, move: Callable[[], object]
) -> list[str]:
    """Make `move` happen just before the first look at `directory`; return the looks made."""
    real: Look = lookup.entry_exists
    looks: list[str] = []

    def look(path: Path, job_id: int) -> bool:
        looks.append(path.name)
        if path.name == directory and looks.count(directory) == 1:
            move()
        return real(path, job_id)

    monkeypatch.setattr(lookup, "entry_exists", look)
    return looks


def finish(spool: Spool, taken: Taken, status: SpoolStatus, reason: FailureReason | None) -> None:
    spool.complete(taken, status, reason, duration=0.1, exit_code=0, runner="t")


def test_a_job_taken_while_pending_is_looked_at_reads_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool, job_id = one_job(tmp_path)
    assert spool.status(job_id) is SpoolStatus.PENDING
    taken: list[Taken | None] = []
    looks = move_at(monkeypatch, "pending", lambda: taken.append(spool.take()))
    assert spool.status(job_id) is SpoolStatus.RUNNING
    assert taken[0] is not None and taken[0].job.id == job_id  # the real take moved it
    assert looks == ["waiting", "manual", "pending", "running"]


def test_a_job_completed_while_running_is_looked_at_reads_its_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool, job_id = one_job(tmp_path)
    taken = spool.take()
    assert taken is not None
    move_at(monkeypatch, "running", lambda: finish(spool, taken, SpoolStatus.SUCCESS, None))
    assert spool.status(job_id) is SpoolStatus.SUCCESS


def test_a_job_moved_back_to_pending_while_looked_for_is_found_by_another_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A retry puts the job from running/ back to pending/, which this pass looked at already."""
    spool, job_id = one_job(tmp_path, "flaky: {script: x, retry: 1}\n")
    taken = spool.take()
    assert taken is not None
    failed = (SpoolStatus.FAILED, FailureReason.SCRIPT_FAILURE)
    looks = move_at(monkeypatch, "running", lambda: finish(spool, taken, *failed))
    assert spool.status(job_id) is SpoolStatus.PENDING
    assert looks.count("pending") == 2, looks  # the first pass missed it, the second found it


def test_a_job_in_no_place_is_unknown_after_a_bounded_number_of_looks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool, _ = one_job(tmp_path)
    looks = move_at(monkeypatch, "-", lambda: None)
    assert spool.status(999) is SpoolStatus.UNKNOWN
    assert len(looks) == lookup.PASSES * len(lookup.MOVE_ORDER)


def test_a_dead_runner_s_leftover_entry_does_not_hide_the_result(tmp_path: Path) -> None:
    """Done and still in running/ (died between the two): the result is what it says."""
    spool, job_id = one_job(tmp_path)
    taken = spool.take()
    assert taken is not None
    entry = (spool.dir("running") / f"{job_id}.json").read_bytes()
    finish(spool, taken, SpoolStatus.FAILED, FailureReason.SCRIPT_FAILURE)
    (spool.dir("running") / f"{job_id}.json").write_bytes(entry)
    assert spool.status(job_id) is SpoolStatus.FAILED
