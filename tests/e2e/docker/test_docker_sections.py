"""EXECUTOR_JOB_SECTION_ATTEMPTS on a real engine: the build container removed under a running
script; the section runs again in a new container, as GitLab Runner's docker executor does."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.support.engine import Engine, docker_config, leftovers, unique_runner
from tests.support.jobs import STARTED, JobsRig, pipeline

pytestmark = pytest.mark.e2e


def _script(rig: JobsRig) -> list[str]:
    once = f'"{rig.out}/once-$CI_JOB_ID"'
    return [f"if [ -e {once} ]; then echo second run; else touch {once}; {STARTED}; sleep 600; fi"]


def _removed_while_running(
    rig: JobsRig, engine: Engine, attempts: str
) -> tuple[dict[str, Any], str]:
    name = unique_runner()
    volumes = f'volumes = ["{rig.out}:{rig.out}"]\n'
    rig.runner(docker_config(rig.config(name=name), engine.host, extra=volumes))
    job = {"variables": {"EXECUTOR_JOB_SECTION_ATTEMPTS": attempts}, "script": _script(rig)}
    job_id = rig.submit(rig.project("p", pipeline(only=job))).jobs["only"]
    rig.wait_started([job_id], timeout=60)
    (container,) = leftovers(name)["containers"]
    engine.client().containers.get(container).remove(force=True)
    result = rig.wait_results([job_id], timeout=60)[job_id]
    return result, rig.trace(job_id).decode()


def test_a_vanished_container_reruns_the_section(rig: JobsRig, engine: Engine) -> None:
    result, log = _removed_while_running(rig, engine, "2")
    assert result["status"] == "success", log
    assert "not found or removed. Will retry..." in log
    assert log.index("Retrying build_script") < log.index("second run\n")


def test_without_attempts_a_vanished_container_fails_the_job(rig: JobsRig, engine: Engine) -> None:
    result, log = _removed_while_running(rig, engine, "1")
    assert (result["status"], result["failure_reason"]) == ("failed", "runner_system_failure"), log
    assert "Retrying" not in log


def test_a_rerun_section_gets_only_what_is_left_of_the_jobs_time(
    rig: JobsRig, engine: Engine
) -> None:
    """Job timeout 16 s, its container removed 8 s after the script started: the section runs
    again within the time left, and the job ends at its timeout plus the cost of stopping it.
    Given the 16 s again, the rerun would end the job 24 s or more after it started."""
    name = unique_runner()
    volumes = f'volumes = ["{rig.out}:{rig.out}"]\n'
    runner = rig.runner(docker_config(rig.config(name=name), engine.host, extra=volumes))
    once = f'"{rig.out}/once-$CI_JOB_ID"'
    script = f"if [ ! -e {once} ]; then touch {once}; {STARTED}; fi; echo running; sleep 600"
    job = {"variables": {"EXECUTOR_JOB_SECTION_ATTEMPTS": "3"}, "timeout": "16s"}
    job_id = rig.submit(rig.project("p", pipeline(only={**job, "script": [script]}))).jobs["only"]
    rig.wait_started([job_id], timeout=60)
    time.sleep(8)  # half the job's time used: what a rerun may have left
    (container,) = leftovers(name)["containers"]
    engine.client().containers.get(container).remove(force=True)
    result = rig.wait_results([job_id], timeout=120)[job_id]
    log = rig.trace(job_id).decode()
    ended = (result["status"], result["failure_reason"])
    assert ended == ("timedout", "job_execution_timeout"), log + runner.stderr_text
    assert log.index("Retrying build_script") < log.rindex("running\n"), log  # it did run again
    assert "Execution attempts exceeded" not in log
    overshoot = result["duration"] - 16
    assert overshoot < 5, f"the job ran {overshoot:.1f}s past its timeout: its rerun got 16 s again"
