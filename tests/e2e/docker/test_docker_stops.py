"""Cancel, timeout, SIGTERM and kill -9 leave no container, network or volume behind."""

from __future__ import annotations

import signal

from tests.support.engine import NOTHING, Engine, docker_config, leftovers, unique_runner
from tests.support.jobs import STARTED, JobsRig, builds_series, pipeline
from tests.support.polling import wait_until
from tests.support.runner import RunnerProcess

LONG = [STARTED, "sleep 600"]


def start(rig: JobsRig, engine: Engine, name: str) -> RunnerProcess:
    # The rig's out/ is mounted at the same path, so that `$OUT/started-ID` reaches the test.
    # /scratch is a volume of the build alone (disable_cache): it must go with the build.
    volumes = f'volumes = ["{rig.out}:{rig.out}", "/scratch"]\ndisable_cache = true\n'
    return rig.runner(docker_config(rig.config(name=name), engine.host, extra=volumes))


def running(rig: JobsRig, name: str, job: int, runner: RunnerProcess) -> None:
    rig.wait_started([job], timeout=60)
    found = leftovers(name)
    assert [len(found[k]) for k in ("containers", "networks", "volumes")] == [1, 1, 1], found
    # GitLab's docker executor stage while the script runs.
    assert builds_series(runner.families(), name) == {
        ("build_script", "running", "docker_run"): 1.0,
        ("idle", "idle", "idle"): 0.0,
    }


def test_cancel_and_timeout_remove_the_jobs_containers(rig: JobsRig, engine: Engine) -> None:
    name = unique_runner()
    runner = start(rig, engine, name)
    ids = rig.submit(rig.project("p", pipeline(long={"script": LONG}))).jobs
    running(rig, name, ids["long"], runner)
    rig.cancel(ids["long"])
    result = rig.wait_results([ids["long"]], timeout=30)[ids["long"]]
    assert (result["status"], result["failure_reason"]) == ("canceled", "job_canceled")
    assert leftovers(name) == NOTHING

    slow = {"timeout": "3s", "script": LONG, "services": ["alloy-test/web"]}
    job = rig.submit(rig.project("q", pipeline(slow=slow))).jobs["slow"]
    result = rig.wait_results([job], timeout=60)[job]
    assert (result["status"], result["failure_reason"]) == ("timedout", "job_execution_timeout")
    assert leftovers(name) == NOTHING


def test_sigterm_removes_the_jobs_containers(rig: JobsRig, engine: Engine) -> None:
    name = unique_runner()
    runner = start(rig, engine, name)
    job = rig.submit(rig.project("p", pipeline(long={"script": LONG}))).jobs["long"]
    running(rig, name, job, runner)
    runner.signal(signal.SIGTERM)
    assert runner.wait(30) == 0
    result = rig.result(job)
    assert result is not None
    assert (result["status"], result["failure_reason"]) == ("terminated", "runner_interrupted")
    assert leftovers(name) == NOTHING


def test_a_restart_after_kill_9_removes_what_the_dead_runner_left(
    rig: JobsRig, engine: Engine
) -> None:
    name = unique_runner()
    runner = start(rig, engine, name)
    job = {"services": ["alloy-test/web"], "script": LONG}
    ids = rig.submit(rig.project("p", pipeline(long=job))).jobs
    rig.wait_started([ids["long"]], timeout=60)
    runner.signal(signal.SIGKILL)
    runner.wait(10)
    left = leftovers(name)
    assert [len(left[k]) for k in ("containers", "networks", "volumes")] == [2, 1, 1], left
    restarted = start(rig, engine, name)
    wait_until(lambda: leftovers(name) == NOTHING, 60, 0.5, "the leftovers removed")
    restarted.wait_for_line(r"removed 4 container\(s\), network\(s\) or volume\(s\)", timeout=10)
