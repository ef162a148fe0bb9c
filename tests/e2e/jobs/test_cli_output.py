"""What the real `alloy-runner` writes on stdout when it is a pipe: each line at once, and
nothing but its exit status when the reader went away."""

from __future__ import annotations

import os
import selectors
import subprocess

from tests.support.jobs import JobsRig
from tests.support.runner import ALLOY_RUNNER, runner_env

PIPELINE = 'only:\n  script: ["true"]\n'


def test_submit_wait_says_its_pipeline_before_it_ends(rig: JobsRig) -> None:
    """`submit --wait` into a pipe prints its pipeline line while it still waits.

    No runner takes the job, so the command waits out its timeout: a block-buffered
    stdout would hold the line back until then (or lose it to a kill).
    """
    project = rig.project("waits", PIPELINE)
    command = [ALLOY_RUNNER, "submit", "--wait", "--timeout", "120", "--file", str(project.file)]
    proc = subprocess.Popen(
        [*command, "--spool", str(rig.spool)],
        env=runner_env(rig.home, {"PYTHONUNBUFFERED": None, "TMPDIR": str(rig.tmp)}),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ)
            assert selector.select(timeout=30), "no line on stdout within 30 s"
        line = proc.stdout.readline()
        assert line.startswith("pipeline 1: 1 job(s) in "), line
        assert proc.poll() is None  # still waiting for the job: the line came as it was said
    finally:
        proc.kill()
        proc.communicate()


def test_a_reader_that_went_away_is_exit_1_and_no_noise(rig: JobsRig) -> None:
    """`list` into a pipe nobody reads exits 1 and writes nothing on stderr (as click did)."""
    config = rig.root / "config.toml"
    config.write_text('[[runners]]\nname = "a"\nurl = "http://x.test"\ntoken = "glrt-a"\n')
    read_end, write_end = os.pipe()
    os.close(read_end)  # every write to the pipe now fails with EPIPE
    try:
        done = subprocess.run(
            [ALLOY_RUNNER, "list", "--config", str(config)],
            env=runner_env(rig.home, {"PYTHONUNBUFFERED": None}),
            stdin=subprocess.DEVNULL,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=30,
            check=False,
        )
    finally:
        os.close(write_end)
    assert done.returncode == 1
    assert done.stderr == ""
