"""Spool entries that are no job end in done/ as failed, once, without a traceback."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from alloy_runner.build.states import FailureReason
from alloy_runner.cli import main
from alloy_runner.coordinator.spool.store import Spool


@pytest.mark.parametrize(
    ("make", "why"),
    [
        (lambda p: p.mkdir(), "Is a directory"),
        (lambda p: p.write_text("[1, 2]"), "expected a JSON object"),
        (lambda p: p.write_text('"text"'), "expected a JSON object"),
        (lambda p: p.write_bytes(b"\xff\xfe{"), "codec"),
        (lambda p: p.write_text('{"id": 905}'), "no 'script' step"),
        (
            lambda p: p.write_text(json.dumps({"id": 905, "steps": [{"name": "after_script"}]})),
            "no 'script' step",
        ),
    ],
)
def test_an_entry_that_is_no_job_fails_as_a_configuration_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, make: object, why: str
) -> None:
    """The entry fails with runner_configuration_error and one log line, nothing stays behind."""
    spool = Spool(tmp_path)
    spool.ensure()
    make(spool.dir("pending") / "905.json")  # type: ignore[operator]
    with caplog.at_level(logging.INFO, logger="alloy_runner"):
        assert spool.take() is None
    result = spool.result(905)
    assert result is not None
    assert result.status == "failed"
    assert result.failure_reason is FailureReason.RUNNER_CONFIGURATION_ERROR
    assert not any(spool.dir("running").iterdir())
    assert "malformed" in (spool.dir("done") / "905" / "trace.log").read_text()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and why in lines[0], lines
    assert not any(r.exc_info for r in caplog.records)


def test_a_good_entry_after_a_bad_one_is_taken(tmp_path: Path) -> None:
    """A bad entry does not block the queue behind it."""
    spool = Spool(tmp_path)
    spool.ensure()
    (spool.dir("pending") / "1.json").write_text("[]")
    good = {"id": 2, "token": "t", "steps": [{"name": "script", "script": ["true"]}]}
    (spool.dir("pending") / "2.json").write_text(json.dumps(good))
    taken = spool.take()
    assert taken is not None and taken.job.id == 2


def test_the_spool_is_private_to_its_owner(tmp_path: Path) -> None:
    """Directories are 0700 and job files 0600, also in a spool an older version made 0755."""
    root = tmp_path / "spool"
    (root / "pending").mkdir(parents=True)
    (root / "pending").chmod(0o755)
    ci = tmp_path / ".alloy-ci.yml"
    ci.write_text("build:\n  script: [echo hi]\n")
    main(["submit", "--file", str(ci), "--spool", str(root), "--masked-var", "TOKEN=secret-value"])
    for path in (root, *(root / name for name in ("pending", "running", "waiting", "done"))):
        assert path.stat().st_mode & 0o777 == 0o700, path
    (entry,) = (root / "pending").iterdir()
    assert "secret-value" in entry.read_text()
    assert entry.stat().st_mode & 0o777 == 0o600


def test_an_entry_whose_name_is_no_ascii_number_is_passed_over(tmp_path: Path) -> None:
    """`².json` passes str.isdigit() yet int() refuses it: it must not stop the queue."""
    spool = Spool(tmp_path)
    spool.ensure()
    (spool.dir("pending") / "\u00b2.json").write_text("{}")
    good = {"id": 3, "token": "t", "steps": [{"name": "script", "script": ["true"]}]}
    (spool.dir("pending") / "3.json").write_text(json.dumps(good))
    taken = spool.take()
    assert taken is not None and taken.job.id == 3
