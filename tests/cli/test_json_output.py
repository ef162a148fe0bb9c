"""`submit`, `cancel` and `list` with `--json`: one JSON document on stdout, through `main(argv)`.

A thread stands in for a runner where a job must end: it takes jobs from the
spool and completes them as their names say, through the spool's own API.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from alloy_runner.build.states import FailureReason
from alloy_runner.coordinator.spool.records import SpoolStatus
from alloy_runner.coordinator.spool.store import Spool
from tests.support.cli import assert_one_error_line, run_main

PIPELINE = """\
stages: [build, test]
compile:
  stage: build
  script: [make]
flaky:
  stage: build
  script: [exit 1]
  allow_failure: true
check:
  stage: test
  script: [make check]
"""
BROKEN = "broken:\n  script: [exit 1]\n"


@contextlib.contextmanager
def completing(spool: Path) -> Iterator[None]:
    """Complete every job taken from `spool`: names starting `flaky` or `broken` fail."""
    stop = threading.Event()

    def run() -> None:
        the_spool = Spool(spool)
        while not stop.wait(0.01):
            if not (spool / "pending").is_dir():
                continue
            taken = the_spool.take()
            if taken is None:
                continue
            fails = taken.job.name.startswith(("flaky", "broken"))
            the_spool.complete(
                taken,
                SpoolStatus.FAILED if fails else SpoolStatus.SUCCESS,
                FailureReason.SCRIPT_FAILURE if fails else None,
                duration=0.5,
                exit_code=1 if fails else 0,
                runner="in-process",
            )

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)


def _submit(tmp_path: Path, pipeline: str) -> list[str]:
    (tmp_path / ".alloy-ci.yml").write_text(pipeline)
    return ["submit", "--file", str(tmp_path / ".alloy-ci.yml"), "--spool", str(tmp_path / "sp")]


def test_submit_json_names_the_pipeline_and_each_job(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ran = run_main(capsys, *_submit(tmp_path, PIPELINE), "--json")
    assert (ran.status, ran.stderr) == (0, "")
    document = json.loads(ran.stdout)
    assert document == {
        "pipeline": 1,
        "spool": str(tmp_path / "sp"),
        "jobs": [
            {
                "id": 2,
                "name": "compile",
                "stage": "build",
                "allow_failure": False,
                "status": "pending",
            },
            {
                "id": 3,
                "name": "flaky",
                "stage": "build",
                "allow_failure": True,
                "status": "pending",
            },
            {
                "id": 4,
                "name": "check",
                "stage": "test",
                "allow_failure": False,
                "status": "waiting",
            },
        ],
    }


def test_submit_text_is_unchanged(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ran = run_main(capsys, *_submit(tmp_path, PIPELINE))
    assert ran.status == 0
    assert ran.stdout.splitlines() == [
        f"pipeline 1: 3 job(s) in {tmp_path / 'sp'}",
        "  job 2 compile (stage build)",
        "  job 3 flaky (stage build)",
        "  job 4 check (stage test)",
    ]


def test_submit_wait_json_carries_each_result_and_passes_an_allowed_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with completing(tmp_path / "sp"):
        ran = run_main(capsys, *_submit(tmp_path, PIPELINE), "--json", "--wait", "--timeout", "30")
    assert (ran.status, ran.stderr) == (0, "")
    document = json.loads(ran.stdout)  # one document: nothing else on stdout
    assert document["passed"] is True
    by_name = {job["name"]: job for job in document["jobs"]}
    assert {name: job["status"] for name, job in by_name.items()} == {
        "compile": "success",
        "flaky": "failed",
        "check": "success",
    }
    flaky = by_name["flaky"]["result"]
    assert (flaky["id"], flaky["pipeline_id"], flaky["failure_reason"]) == (3, 1, "script_failure")
    assert (flaky["exit_code"], flaky["runner"], flaky["duration"]) == (1, "in-process", 0.5)
    assert set(flaky) == {
        *("id", "name", "stage", "pipeline_id", "status", "failure_reason", "duration"),
        *("exit_code", "runner", "started_at", "queued_seconds", "finished_at", "attempt"),
    }


def test_submit_wait_text_notes_an_allowed_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with completing(tmp_path / "sp"):
        ran = run_main(capsys, *_submit(tmp_path, PIPELINE), "--wait", "--timeout", "30")
    assert ran.status == 0, ran
    assert ran.stdout.splitlines()[4:] == [
        "job 2 compile: success",
        "job 3 flaky: failed (allowed to fail)",
        "job 4 check: success",
    ]


def test_submit_wait_json_of_a_failed_pipeline_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with completing(tmp_path / "sp"):
        ran = run_main(capsys, *_submit(tmp_path, BROKEN), "--json", "--wait", "--timeout", "30")
    assert (ran.status, ran.stderr) == (1, "")
    document = json.loads(ran.stdout)
    assert document["passed"] is False
    assert [job["status"] for job in document["jobs"]] == ["failed"]


def test_submit_wait_json_that_times_out_still_prints_its_document(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ran = run_main(capsys, *_submit(tmp_path, BROKEN), "--json", "--wait", "--timeout", "0.1")
    assert_one_error_line(ran, 1, "the pipeline did not end within 0.1s")
    document = json.loads(ran.stdout)
    assert "passed" not in document
    assert [(job["status"], "result" in job) for job in document["jobs"]] == [("pending", False)]


def test_cancel_json_says_what_was_done(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spool = str(tmp_path / "sp")
    run_main(capsys, *_submit(tmp_path, BROKEN))
    first = run_main(capsys, "cancel", "2", "--spool", spool, "--json")
    assert (first.status, json.loads(first.stdout)) == (
        0,
        {"id": 2, "result": "canceled", "status": "canceled"},
    )
    again = run_main(capsys, "cancel", "2", "--spool", spool, "--json")
    assert json.loads(again.stdout) == {"id": 2, "result": "ended", "status": "canceled"}
    text = run_main(capsys, "cancel", "2", "--spool", spool)
    assert text.stdout == "job 2: canceled\n"
    unknown = run_main(capsys, "cancel", "9", "--spool", spool, "--json")
    assert_one_error_line(unknown, 2, "job 9 is not in")
    assert unknown.stdout == ""


def test_cancel_json_of_a_running_job(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spool = tmp_path / "sp"
    run_main(capsys, *_submit(tmp_path, BROKEN))
    taken = Spool(spool).take()
    assert taken is not None
    try:
        ran = run_main(capsys, "cancel", "2", "--spool", str(spool), "--json")
        assert json.loads(ran.stdout) == {"id": 2, "result": "canceling", "status": "running"}
        assert Spool(spool).canceled(2)
        assert run_main(capsys, "cancel", "2", "--spool", str(spool)).stdout == "job 2: canceling\n"
    finally:
        Spool(spool).complete(
            taken, SpoolStatus.CANCELED, None, duration=0.0, exit_code=None, runner=""
        )
    result = Spool(spool).result(2)
    assert result is not None and result.status is SpoolStatus.CANCELED


def test_list_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        '[[runners]]\nname = "local"\n\n[[runners]]\nname = "m"\nexecutor = "docker+machine"\n'
        'url = "https://ci.test"\ntoken = "glrt-abcdefghijkl"\n'
        '[runners.machine]\nMachineDriver = "local"\nMachineName = "m-%s"\n'
    )
    ran = run_main(capsys, "list", "--json", "-c", str(config))
    assert json.loads(ran.stdout) == {
        "config_file": str(config),
        "runners": [
            {"name": "local", "executor": "shell", "token": None, "url": None},
            {
                "name": "m",
                "executor": "docker+machine",
                "token": "glrt-abc",
                "url": "https://ci.test",
            },
        ],
    }
