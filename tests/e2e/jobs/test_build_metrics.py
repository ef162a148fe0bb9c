"""Build metrics tell the truth at every scrape: while jobs run, and after they end."""

from __future__ import annotations

import json
from collections import Counter

from prometheus_client.metrics_core import Metric

from alloy_runner.build.states import FailureReason
from tests.support.exposition import parse_exposition, sample_value
from tests.support.jobs import BLOCK, STARTED, JobsRig, builds_series, pipeline
from tests.support.polling import wait_until

IDLE = ("idle", "idle", "idle")
SCRAPES = 5


def _blocked_jobs(rig: JobsRig, count: int) -> list[int]:
    jobs = {f"held-{n}": {"script": [STARTED, BLOCK]} for n in range(count)}
    return rig.submit(rig.project("held", pipeline(None, **jobs))).ids


def test_running_builds_are_exact_at_every_scrape_and_counted_when_they_end(
    rig: JobsRig,
) -> None:
    """3 jobs in build_script read as exactly 3 running builds; after them, counts match."""
    runner = rig.runner(rig.config(concurrent=3))
    name = rig.runner_name
    ids = _blocked_jobs(rig, 3)
    rig.wait_started(ids)

    # The shell executor stays in its `prepare` stage from preparing until cleanup.
    running = ("build_script", "running", "prepare")
    for _ in range(SCRAPES):
        families = parse_exposition(runner.scrape()[1])
        assert builds_series(families, name) == {running: 3.0, IDLE: 0.0}
        assert sample_value(families, "ci_runner_concurrent") == 3.0
        assert sample_value(families, "ci_runner_limit", {"runner": name}) == 0.0
        assert sample_value(families, "ci_runner_request_concurrency", {"runner": name}) is not None
        assert (
            sample_value(families, "ci_runner_jobs_total", {"runner": name, "state": "success"})
            == 0.0
        )

    listing = runner.request("GET", "/debug/jobs/list")
    assert listing.status == 200
    lines = listing.text.splitlines()
    assert len(lines) == 3, listing.text
    for job_id, line in zip(ids, lines, strict=True):
        fields = dict(part.split("=", 1) for part in line.split())
        assert fields["id"] == str(job_id)
        assert fields["url"]
        assert fields["state"] == "running"
        assert fields["stage"] == "build_script"
        assert fields["executor_stage"] == "prepare"
        assert fields["duration"].endswith("s")
    for job_id in ids:
        token = json.loads((rig.spool / "running" / f"{job_id}.json").read_text())["token"]
        assert token
        assert token.encode() not in listing.body

    rig.release()
    results = rig.wait_results(ids)
    assert {r["status"] for r in results.values()} == {"success"}

    def idle_only() -> dict[str, Metric] | None:
        families = parse_exposition(runner.scrape()[1])
        return families if builds_series(families, name) == {IDLE: 0.0} else None

    families = wait_until(idle_only, 10, 0.05, "ci_runner_builds back to the idle series only")
    labels = {"runner": name}
    assert sample_value(families, "ci_runner_jobs_total", {**labels, "state": "success"}) == 3.0
    for state in ("failed", "canceled", "terminated", "timedout"):
        assert sample_value(families, "ci_runner_jobs_total", {**labels, "state": state}) == 0.0
    assert sample_value(families, "ci_runner_job_duration_seconds_count", labels) == 3.0
    assert (
        sample_value(
            families,
            "ci_runner_job_stage_duration_seconds_count",
            {**labels, "stage": "build_script"},
        )
        == 3.0
    )
    # A second look changes nothing: the ended builds stay ended.
    assert builds_series(parse_exposition(runner.scrape()[1]), name) == {IDLE: 0.0}


def test_runner_limit_keeps_builds_at_one_while_others_wait(rig: JobsRig) -> None:
    """With `limit = 1` and `concurrent = 3`, never more than one build runs; the gauge says 1."""
    runner = rig.runner(rig.config(concurrent=3, limit=1))
    name = rig.runner_name
    ids = _blocked_jobs(rig, 3)
    rig.wait_started(ids[:1])

    for _ in range(SCRAPES):
        families = parse_exposition(runner.scrape()[1])
        series = builds_series(families, name)
        assert series == {("build_script", "running", "prepare"): 1.0, IDLE: 0.0}
        assert sample_value(families, "ci_runner_limit", {"runner": name}) == 1.0
        assert sample_value(families, "ci_runner_concurrent") == 3.0
        assert rig.in_dir("pending") == set(ids[1:])
        assert rig.in_dir("running") == set(ids[:1])

    rig.release()
    peak = 0.0
    while any(rig.result(i) is None for i in ids):
        series = builds_series(parse_exposition(runner.scrape()[1]), name)
        peak = max(peak, sum(v for k, v in series.items() if k != IDLE))
        assert len(rig.in_dir("running")) <= 1
    assert peak <= 1.0
    results = rig.wait_results(ids)
    assert {r["status"] for r in results.values()} == {"success"}


def test_job_counters_match_the_results_of_every_outcome(rig: JobsRig) -> None:
    """`ci_runner_jobs_total` and `ci_runner_failed_jobs_total` count exactly what results say."""
    runner = rig.runner(rig.config(concurrent=4))
    name = rig.runner_name
    project = rig.project(
        "outcomes",
        pipeline(
            ok={"script": ["true"]},
            bad={"script": ["exit 4"]},
            slow={"script": ["sleep 30"], "timeout": "1s"},
            held={"script": [STARTED, BLOCK]},
        ),
    )
    jobs = rig.submit(project).jobs
    rig.wait_started([jobs["held"]])
    rig.cancel(jobs["held"])
    results = rig.wait_results(jobs.values(), timeout=20)
    assert {n: results[j]["status"] for n, j in jobs.items()} == {
        "ok": "success",
        "bad": "failed",
        "slow": "timedout",
        "held": "canceled",
    }

    def settled() -> dict[str, Metric] | None:
        families = parse_exposition(runner.scrape()[1])
        return families if builds_series(families, name) == {IDLE: 0.0} else None

    families = wait_until(settled, 10, 0.05, "no build left")
    states = Counter(r["status"] for r in results.values())
    for state in ("success", "failed", "canceled", "terminated", "timedout"):
        value = sample_value(families, "ci_runner_jobs_total", {"runner": name, "state": state})
        assert value == states[state], state
    reasons = Counter(r["failure_reason"] for r in results.values() if r["failure_reason"])
    assert set(reasons) == {"script_failure", "job_execution_timeout", "job_canceled"}
    for reason in FailureReason:
        labels = {"runner": name, "failure_reason": reason.value}
        value = sample_value(families, "ci_runner_failed_jobs_total", labels)
        assert value == reasons[reason.value], reason
    assert sample_value(families, "ci_runner_job_duration_seconds_count", {"runner": name}) == 4
