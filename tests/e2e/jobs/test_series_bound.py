"""Many jobs add no series, end to end: a 50-job smoke through the real process.

The 1,000-job bound runs in-process (tests/app/test_series_bound.py); this
checks the same bound on the real exposition, at every scrape while jobs run.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from prometheus_client.metrics_core import Metric

from alloy_runner.build.states import IDLE, BuildStage
from tests.support.exposition import parse_exposition, sample_value
from tests.support.jobs import JobsRig, builds_series, pipeline
from tests.support.polling import wait_until
from tests.support.runner import RunnerProcess
from tests.support.series import check_series

JOBS = 50


def test_fifty_jobs_add_no_series_beyond_the_closed_label_sets(rig: JobsRig) -> None:
    """After 50 jobs through the real process every family stays within its closed sets."""
    runner = rig.runner(rig.config(concurrent=4))
    jobs = {f"j{n:04d}": {"script": ["true"]} for n in range(JOBS)}
    project = rig.project("fifty", pipeline(None, **jobs))
    runners = {rig.runner_name}
    before = check_series(parse_exposition(runner.scrape()[1]), runners)

    submitted = rig.submit(project)
    assert len(submitted.ids) == JOBS
    scrapes = _scrape_until_done(rig, runner, submitted.ids, runners)
    results = rig.wait_results(submitted.ids, timeout=30)
    assert {r["status"] for r in results.values()} == {"success"}
    rig.wait_counts({"waiting": 0, "pending": 0, "running": 0, "done": JOBS})

    def settled() -> Mapping[str, Metric] | None:
        families = parse_exposition(runner.scrape()[1])
        idle = builds_series(families, rig.runner_name) == {(IDLE, IDLE, IDLE): 0.0}
        return families if idle else None

    families = wait_until(settled, 10, 0.05, "no build left")
    labels = {"runner": rig.runner_name}
    assert sample_value(families, "ci_runner_jobs_total", {**labels, "state": "success"}) == JOBS
    assert sample_value(families, "ci_runner_job_duration_seconds_count", labels) == JOBS
    after = check_series(families, runners)
    assert scrapes >= 2, "scrapes were taken while the jobs ran"
    # Jobs add their stage and duration series once, then never more.
    assert after <= before + len(BuildStage) + 2


def _scrape_until_done(
    rig: JobsRig, runner: RunnerProcess, ids: list[int], runners: set[str], timeout: float = 120.0
) -> int:
    """Check the series bound at every scrape until the last job has a result; count scrapes."""
    deadline = time.monotonic() + timeout
    scrapes = 0
    while True:
        check_series(parse_exposition(runner.scrape()[1]), runners)
        scrapes += 1
        if rig.result(ids[-1]) is not None and all(rig.result(j) is not None for j in ids):
            return scrapes
        assert time.monotonic() < deadline, f"the jobs did not all end within {timeout}s"
        time.sleep(0.1)  # the interval between scrapes, not a wait for something
