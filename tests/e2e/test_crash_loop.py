"""A crash loop cannot hide its failures: Prometheus sees every recovered job fail."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import start_prometheus
from tests.support.http_client import free_port
from tests.support.jobs import BLOCK, STARTED, JobsRig, pipeline
from tests.support.polling import wait_until

KILLS = 3
FAILED = 'ci_runner_failed_jobs_total{failure_reason="runner_system_failure"}'


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[JobsRig]:
    the_rig = JobsRig(tmp_path / "rig")
    try:
        yield the_rig
    finally:
        the_rig.stop_all()


def test_kill_9_three_times_while_a_job_runs_and_prometheus_sees_three_failures(
    rig: JobsRig, tmp_path: Path
) -> None:
    """Each restart fails the job its predecessor left; increase() counts all three.

    Only Prometheus scrapes the runner: each new process must show its failure
    counter at 0 to Prometheus before it counts the recovered job, or the
    restart would hide the failure.
    """
    port = free_port()
    config = rig.config(concurrent=1)
    started: list[float] = []

    def new_process_scraped() -> float | None:
        result = prometheus.query("process_start_time_seconds")
        value = float(result[0]["value"][1]) if result else None
        return value if value is not None and value not in started else None

    with start_prometheus(tmp_path, [f"127.0.0.1:{port}"]) as prometheus:
        for cycle in range(KILLS + 1):
            runner = rig.runner(config, metrics_server=f"127.0.0.1:{port}")
            started.append(
                wait_until(new_process_scraped, 20, 0.1, f"process {cycle} scraped ({started})")
            )
            if cycle > 0:  # it failed its predecessor's job, and shows it after a 0
                prometheus.wait_for_query(f"{FAILED} == 1")
            if cycle == KILLS:
                break
            job = rig.submit(
                rig.project(f"crash-{cycle}", pipeline(held={"script": [STARTED, BLOCK]}))
            ).ids
            rig.wait_started(job)
            runner.signal(signal.SIGKILL)
            assert runner.wait(10) == -signal.SIGKILL

        (increase,) = prometheus.query(f"sum(increase({FAILED}[5m]))")
        assert float(increase["value"][1]) >= KILLS - 0.5
        (resets,) = prometheus.query(f"sum(resets({FAILED}[5m]))")
        assert float(resets["value"][1]) == KILLS - 1
        (restarts,) = prometheus.query("changes(process_start_time_seconds[5m])")
        assert float(restarts["value"][1]) == KILLS
