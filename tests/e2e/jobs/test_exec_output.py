"""`exec` whose stdout closes or fails: the job is canceled and `exec` ends promptly."""

from __future__ import annotations

import secrets
import subprocess
import time
from pathlib import Path
from typing import IO

import pytest

from tests.support.runner import ALLOY_RUNNER, runner_env

LOUD = """\
loud:
  script:
    - seq 1 200000
    - sleep 300
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / ".alloy-ci.yml").write_text(LOUD)
    return tmp_path


def _exec(project: Path, stdout: int | IO[bytes]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [ALLOY_RUNNER, "exec", "shell", "loud", "--builds-dir", str(project / "builds")],
        cwd=project,
        env=runner_env(project),
        stdout=stdout,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )


def test_a_closed_pipe_cancels_the_job_and_exits_as_sigpipe_would(project: Path) -> None:
    """`exec shell loud | head -2`: exec ends at once with 141, no traceback, no job left."""
    proc = _exec(project, subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    head = [proc.stdout.readline() for _ in range(2)]
    proc.stdout.close()  # what `head -2` does after its two lines
    started = time.monotonic()
    try:
        code = proc.wait(timeout=30)
    finally:
        proc.kill()
    stderr = proc.stderr.read().decode()
    proc.stderr.close()
    assert time.monotonic() - started < 30
    assert head[0]  # the job log had begun
    assert code == 141, stderr
    assert "Traceback" not in stderr
    leftover = subprocess.run(
        ["pgrep", "-f", "sleep 300"], capture_output=True, text=True, check=False
    )
    assert str(project) not in leftover.stdout


def test_a_full_stdout_is_one_line_and_exit_1(project: Path) -> None:
    """stdout on /dev/full: one clear line on stderr, exit status 1, the job canceled."""
    with open("/dev/full", "wb") as full:
        proc = _exec(project, full)
        try:
            code = proc.wait(timeout=30)
        finally:
            proc.kill()
    assert proc.stderr is not None
    with proc.stderr:
        stderr = proc.stderr.read().decode()
    errors = [line for line in stderr.splitlines() if "alloy-runner: error" in line]
    assert code == 1
    assert errors == [
        "alloy-runner: error: cannot write the job log to stdout: No space left on device"
    ]


def test_a_process_that_left_the_session_is_stopped_when_the_job_ends(tmp_path: Path) -> None:
    """`setsid sleep &` escapes the script's process group; the job's marker still finds it."""
    duration = f"{300 + secrets.randbelow(1000)}.{secrets.randbelow(10**6)}"
    (tmp_path / ".alloy-ci.yml").write_text(
        f"orphan:\n  script:\n    - (setsid sleep {duration} &)\n    - echo left one behind\n"
    )
    done = subprocess.run(
        [ALLOY_RUNNER, "exec", "shell", "orphan", "--builds-dir", str(tmp_path / "builds")],
        cwd=tmp_path,
        env=runner_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    assert "left one behind" in done.stdout
    left = subprocess.run(
        ["pgrep", "-f", f"sleep {duration}"], capture_output=True, text=True, check=False
    )
    assert left.stdout == "", f"still running: {left.stdout}"
