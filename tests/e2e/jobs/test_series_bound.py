"""Many jobs add no series: the exposition stays within what the closed label sets allow."""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Mapping

from prometheus_client.metrics_core import Metric

from alloy_runner.build.states import (
    FINAL_STATES,
    IDLE,
    BuildStage,
    BuildState,
    ExecutorStage,
    FailureReason,
)
from alloy_runner.config.model import EXECUTORS
from alloy_runner.coordinator.api_metrics import Endpoint, TransportFailure
from alloy_runner.telemetry.catalog import instruments
from tests.support.exposition import parse_exposition, sample_value
from tests.support.jobs import JobsRig, builds_series, pipeline
from tests.support.polling import wait_until
from tests.support.runner import RunnerProcess

JOBS = 1000
# The closed sets of the machine families, as the metric catalog (spec/metrics.md) lists them.
MACHINE_EVENTS = {"created", "removed", "used", "creation_failed"}
MACHINE_STATES = {"acquired", "creating", "idle", "removing", "used"}


def closed_values(family: instruments.Family, runners: set[str]) -> dict[str, set[str]]:
    """Return every value each label of `family` may take, with these runner names."""
    values = {
        "runner": runners,
        "stage": {s.value for s in BuildStage},
        "state": {s.value for s in BuildState},
        "executor_stage": {s.value for s in ExecutorStage},
        "executor": set(EXECUTORS),
        "failure_reason": {r.value for r in FailureReason},
        "level": {level.value for level in instruments.ErrorLevel},
        "generation": {str(g) for g in range(len(gc.get_stats()))},
        "type": MACHINE_EVENTS,
        "endpoint": {e.value for e in Endpoint},
        "status": {str(code) for code in range(100, 600)}
        | {f.value for f in TransportFailure}
        | {"invalid"},
    }
    if family is instruments.BUILDS:  # and one idle series per runner
        for label in ("stage", "state", "executor_stage"):
            values[label] = values[label] | {IDLE}
    if family is instruments.JOBS:
        values["state"] = {s.value for s in FINAL_STATES}
    if family.labels == ("state",):  # the machine providers
        values["state"] = MACHINE_STATES
    return values


def allowed_series(family: instruments.Family, runners: set[str]) -> int:
    """Return how many label sets `family` may expose at most."""
    if family is instruments.BUILDS:  # every stage, state and executor stage, or idle
        return len(runners) * (len(BuildStage) * len(BuildState) * len(ExecutorStage) + 1)
    if family.name in ("ci_runner_version_info", "python_info"):
        return 1  # the labels describe the one build and the one interpreter
    values = closed_values(family, runners)
    return math.prod(len(values[label]) for label in family.labels)


def label_sets(metric: Metric) -> set[frozenset[tuple[str, str]]]:
    """Return the distinct label sets of a family (a histogram's `le` does not count)."""
    return {frozenset((k, v) for k, v in s.labels.items() if k != "le") for s in metric.samples}


def check_series(families: Mapping[str, Metric], runners: set[str]) -> int:
    """Assert each family is in the catalog, within its closed sets; return the series total."""
    catalog = {f.name: f for f in instruments.CATALOG}
    total = 0
    for name, metric in families.items():
        if name == "target_info":
            continue
        assert name in catalog, f"family {name} is not in the catalog"
        family = catalog[name]
        values = closed_values(family, runners)
        sets = label_sets(metric)
        assert len(sets) <= allowed_series(family, runners), (name, len(sets))
        for labels in sets:
            assert {k for k, _ in labels} == set(family.labels), (name, labels)
            for key, value in labels:
                if key in values:
                    assert value in values[key], f"{name}{{{key}={value!r}}} is not a closed value"
        samples_per_set = 1
        if family.kind is instruments.Kind.HISTOGRAM:
            samples_per_set = len(family.buckets) + 1 + 2  # buckets, +Inf, _sum, _count
        assert len(metric.samples) <= len(sets) * samples_per_set, name
        total += len(sets)
    return total


def test_a_thousand_jobs_add_no_series_beyond_the_closed_label_sets(rig: JobsRig) -> None:
    """After 1,000 jobs every family stays within its closed label sets, and all jobs are done."""
    runner = rig.runner(rig.config(concurrent=4))
    jobs = {f"j{n:04d}": {"script": ["true"]} for n in range(JOBS)}
    project = rig.project("thousand", pipeline(**jobs))
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
    assert scrapes >= 3, "scrapes were taken while the jobs ran"
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
        time.sleep(0.5)
