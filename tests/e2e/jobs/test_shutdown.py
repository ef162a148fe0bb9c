"""Signals with a job running: SIGQUIT lets it finish, SIGTERM ends it as terminated."""

from __future__ import annotations

import signal
import time

from tests.support.jobs import BLOCK, RECORD_PGID, STARTED, JobsRig, pipeline, process_alive
from tests.support.polling import wait_until

KILL_TIMEOUT = 1.0


def test_sigquit_lets_the_running_job_finish_then_exits_0(rig: JobsRig) -> None:
    """After SIGQUIT the running job goes on to success, no new job starts, and the exit is 0."""
    runner = rig.runner(rig.config(concurrent=2, kill_timeout=KILL_TIMEOUT))
    job = rig.submit(rig.project("long", pipeline(long={"script": [STARTED, BLOCK]}))).jobs["long"]
    rig.wait_started([job])

    runner.signal(signal.SIGQUIT)
    runner.wait_for_line("graceful shutdown: waiting")
    later = rig.submit(rig.project("later", pipeline(later={"script": [STARTED]}))).jobs["later"]
    assert process_alive(runner.pid), "the runner waits for its running job"
    assert rig.in_dir("pending") == {later}, "a stopping runner takes no new job"
    assert rig.in_dir("running") == {job}

    rig.release(job)
    assert runner.wait(15) == 0
    result = rig.result(job)
    assert result is not None
    assert (result["status"], result["failure_reason"]) == ("success", None)
    # The whole graceful shutdown, from SIGQUIT to the exit, never took the later job.
    assert rig.in_dir("pending") == {later}
    assert not (rig.out / f"started-{later}").exists()


def test_sigterm_ends_the_running_job_as_terminated_and_exits_0_in_time(rig: JobsRig) -> None:
    """SIGTERM ends a job that ignores TERM as terminated (runner_interrupted), exit 0 in time."""
    runner = rig.runner(rig.config(kill_timeout=KILL_TIMEOUT))
    stubborn = {"script": ["trap '' TERM", RECORD_PGID, STARTED, BLOCK]}
    job = rig.submit(rig.project("stubborn", pipeline(stubborn=stubborn))).jobs["stubborn"]
    rig.wait_started([job])
    pgid = int((rig.out / f"pgid-{job}").read_text())

    began = time.monotonic()
    runner.signal(signal.SIGTERM)
    assert runner.wait(KILL_TIMEOUT + 10) == 0
    assert time.monotonic() - began < KILL_TIMEOUT + 4
    result = rig.result(job)
    assert result is not None, "the result is recorded before the process exits"
    assert (result["status"], result["failure_reason"]) == ("terminated", "runner_interrupted")
    assert rig.counts() == {"waiting": 0, "pending": 0, "running": 0, "done": 1}
    wait_until(lambda: not process_alive(pgid), 5, 0.05, "the job's shell gone")
