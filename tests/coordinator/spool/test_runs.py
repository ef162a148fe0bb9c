"""A spool pipeline as a run: its trace at submit, its active state, its end seen once."""

from __future__ import annotations

from pathlib import Path

from alloy_runner.build.ports import PIPELINE_TRACEPARENT
from alloy_runner.coordinator.spool.records import SpoolStatus
from alloy_runner.coordinator.spool.runs import ActiveRuns, ended_run
from alloy_runner.coordinator.spool.store import Spool
from alloy_runner.pipeline.ci_yaml import parse_pipeline
from alloy_runner.pipeline.repo import read_repo
from alloy_runner.pipeline.submit import submit

PIPELINE = """\
stages: [build, test]
compile:
  stage: build
  script: [make]
unit:
  stage: test
  script: [make test]
"""


def test_a_run_is_pending_then_executing_then_ended_once(tmp_path: Path) -> None:
    """Submitted: pending, its jobs carry its traceparent; taken: executing; when its last job
    completes its end is claimed once, and it is no longer active."""
    spool = Spool(tmp_path / "spool")
    project = tmp_path / "demo"
    project.mkdir()
    pipeline_id, planned = submit(spool, parse_pipeline(PIPELINE), read_repo(project))
    active = ActiveRuns(spool)
    assert active() == [("demo", "pending")]
    run_tp = {v.value for p in planned for v in p.job.variables if v.key == PIPELINE_TRACEPARENT}
    assert len(run_tp) == 1
    for expected in ("executing", "executing"):
        taken = spool.take()
        assert taken is not None
        assert active() == [("demo", expected)]
        assert ended_run(spool, pipeline_id) is None
        spool.complete(taken, SpoolStatus.SUCCESS, None, duration=0.1, exit_code=0, runner="r")
    run = ended_run(spool, pipeline_id)
    assert run is not None and run.result == "success" and run.name == "demo"
    assert run.trace.traceparent in run_tp
    assert run.started_at is not None and run.created_at <= run.started_at <= run.ended_at
    assert ended_run(spool, pipeline_id) is None  # claimed once
    assert active() == []
