"""A spool on a full file system: the job fails clearly, cancel works, the runner goes on."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import StartRunner
from tests.support.polling import wait_until
from tests.support.runner import run_cli

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")

BIG = """\
big:
  script:
    - head -c 4000000 /dev/zero | tr "\\\\0" x | fold -w 100
    - echo never reached
"""
SLEEPY = "sleepy:\n  script:\n    - sleep 60\n"
SMALL = "small:\n  script:\n    - echo small job ran\n"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _submit(home: Path, spool: Path, text: str) -> int:
    project = home / f"project-{len(list(home.glob('project-*')))}"
    project.mkdir()
    (project / ".alloy-ci.yml").write_text(text)
    done = run_cli(
        ["submit", "--file", str(project / ".alloy-ci.yml"), "--spool", str(spool)], home
    )
    assert done.returncode == 0, done.stderr
    return int(done.stdout.split("\n")[1].split()[1])


def _result(spool: Path, job_id: int) -> dict[str, object] | None:
    path = spool / "done" / str(job_id) / "result.json"
    return json.loads(path.read_text()) if path.is_file() else None


def test_full_disk_fails_the_job_and_the_runner_goes_on(
    tmp_path: Path, small_disk: Path, start_runner: StartRunner
) -> None:
    """4 MB of log on a 2 MB spool: runner_system_failure, a line saying so, and no hang."""
    spool = small_disk / "spool"
    home = tmp_path / "cli"
    home.mkdir()
    runner = start_runner(None, args=["--spool", str(spool)])
    big = _submit(home, spool, BIG)
    result = wait_until(lambda: _result(spool, big), timeout=30, what=runner.stderr_text)
    assert result["status"] == "failed"
    assert result["failure_reason"] == "runner_system_failure"
    log = (spool / "done" / str(big) / "trace.log").read_text()
    assert log.rstrip().endswith("the job fails (runner_system_failure)")
    assert "the disk is full" in log
    assert not any((spool / "running").iterdir())
    assert runner.request("GET", "/-/ready").status == 200
    assert "Traceback" not in runner.stderr_text

    # While the disk is still nearly full, a waiting job can be canceled.
    sleepy = _submit(home, spool, SLEEPY)
    wait_until(lambda: (spool / "running" / f"{sleepy}.json").exists(), timeout=30)
    canceled = run_cli(["cancel", str(sleepy), "--spool", str(spool)], home)
    assert canceled.returncode == 0, canceled.stderr
    result = wait_until(lambda: _result(spool, sleepy), timeout=30)
    assert result["status"] == "canceled"

    # Once there is room again, the next job runs as usual.
    (spool / "done" / str(big) / "trace.log").unlink()
    small = _submit(home, spool, SMALL)
    result = wait_until(lambda: _result(spool, small), timeout=30)
    assert result["status"] == "success"
    assert "small job ran" in (spool / "done" / str(small) / "trace.log").read_text()
    runner.stop()
    assert "Traceback" not in runner.stderr_text
