"""`alloy-runner exec shell JOB` in the foreground, and `submit` refusing a bad pipeline."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.support.jobs import BLOCK, JobsRig, pipeline
from tests.support.runner import ALLOY_RUNNER, runner_env

EXIT_USAGE = 2


def _exec(rig: JobsRig, file: str, job: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [ALLOY_RUNNER, "exec", "shell", job, "--file", file, "--builds-dir", str(rig.builds)],
        env=runner_env(
            rig.home, {"OUT": str(rig.out), "WAIT_FOR": str(rig.wait_for), "TMPDIR": str(rig.tmp)}
        ),
        cwd=rig.home,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_exec_streams_the_log_to_stdout_and_stages_to_stderr_and_exits_0(rig: JobsRig) -> None:
    """`exec shell` streams the log to stdout and stage progress to stderr; exits 0 on success."""
    project = rig.project(
        "exec-ok",
        pipeline(ok={"script": ["echo first-line", BLOCK, "echo second-line"]}),
    )
    proc = _exec(rig, str(project.file), "ok")
    try:
        assert proc.stdout is not None
        seen = []
        for line in proc.stdout:
            seen.append(line)
            if line == "first-line\n":
                break
        assert seen[-1] == "first-line\n", "".join(seen)
        # The job blocks until released: the line came while it ran, not at its end.
        assert proc.poll() is None, "the job is still blocked: the log must arrive before the end"
        rig.release()
        rest, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    stdout = "".join(seen) + rest
    assert proc.returncode == 0, stderr
    assert "second-line\n" in stdout
    assert stdout.endswith("Job succeeded\n")
    assert "\u25b6" not in stderr and "\u2714" not in stderr  # no progress display when piped
    assert "job ok: success" in stderr
    assert "first-line" not in stderr


def _exec_on_a_terminal(rig: JobsRig, file: str, job: str) -> tuple[int, str, str]:
    """Run `exec` with stderr on a pseudo-terminal; return its exit code, stdout, terminal."""
    master, slave = os.openpty()
    proc = subprocess.Popen(
        [ALLOY_RUNNER, "exec", "shell", job, "--file", file, "--builds-dir", str(rig.builds)],
        env=runner_env(rig.home, {"OUT": str(rig.out), "TMPDIR": str(rig.tmp)}),
        cwd=rig.home,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=slave,
        text=True,
    )
    os.close(slave)
    screen = b""
    try:
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the terminal closed: exec ended
                break
            if not chunk:
                break
            screen += chunk
        stdout, _ = proc.communicate(timeout=30)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, stdout, screen.decode()


def test_exec_shows_stage_progress_on_a_terminal(rig: JobsRig) -> None:
    """On a terminal, each stage shows as it starts and ends; a failed one shows as failed."""
    project = rig.project(
        "exec-tty", pipeline(ok={"script": ["echo fine"]}, bad={"script": ["exit 4"]})
    )
    code, stdout, screen = _exec_on_a_terminal(rig, str(project.file), "ok")
    assert code == 0 and "fine" in stdout
    assert "\u25b6 build_script" in screen and "\u2714 build_script (" in screen
    assert "\u2714 prepare_script" in screen
    code, stdout, screen = _exec_on_a_terminal(rig, str(project.file), "bad")
    assert code == 1
    assert "\u2718 build_script failed (" in screen
    assert "\u2714 build_script" not in screen


def test_exec_exits_1_when_the_job_fails(rig: JobsRig) -> None:
    """`exec shell` exits 1 when the job fails, with the failure in the log and on stderr."""
    project = rig.project("exec-bad", pipeline(bad={"script": ["echo trying", "exit 3"]}))
    proc = _exec(rig, str(project.file), "bad")
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 1, stderr
    assert "trying\n" in stdout
    assert stdout.endswith("ERROR: Job failed: exit code 3\n")
    assert "job bad: failed (script_failure)" in stderr


BAD_PIPELINES = [
    # The executable's smoke; every kind of bad pipeline: tests/pipeline/test_submit_errors.py.
    pytest.param(
        "stages: [build]\nok:\n  stage: build\n  script: [echo]\nbad:\n  stage: deploy\n"
        "  script: [echo]\n",
        6,
        "stage 'deploy' is not in stages",
        id="unknown-stage",
    ),
]


@pytest.mark.parametrize(("text", "line", "fragment"), BAD_PIPELINES)
def test_submit_of_a_bad_pipeline_exits_2_with_one_line_naming_file_and_line(
    rig: JobsRig, text: str, line: int, fragment: str
) -> None:
    """`submit` of a bad .alloy-ci.yml exits 2, one stderr line `FILE:LINE: ...`, queues nothing."""
    project = rig.project("bad", text)
    done = rig.cli("submit", "--file", str(project.file), "--spool", str(rig.spool))
    assert done.returncode == EXIT_USAGE, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"alloy-runner: error: {project.file}:{line}:"), lines[0]
    assert fragment in lines[0]
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
    assert not any(
        (rig.spool / d).exists() and any((rig.spool / d).iterdir()) for d in ("waiting", "pending")
    )
