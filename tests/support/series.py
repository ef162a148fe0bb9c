"""The series bound: every family within the closed label sets the catalog and spec allow.

Shared by the in-process 1,000-job test (tests/app/test_series_bound.py) and
its end-to-end smoke (tests/e2e/jobs/test_series_bound.py).
"""

from __future__ import annotations

import gc
import math
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

# The closed sets of the machine families, as the metric catalog (spec/metrics.md) lists them.
MACHINE_EVENTS = {"created", "removed", "used", "creation_failed"}
MACHINE_STATES = {"acquired", "creating", "idle", "removing", "used"}


def closed_values(family: instruments.Family, runners: set[str]) -> dict[str, set[str]]:
    """Return every value each label of `family` may take, with these runner names."""
    values: dict[str, set[str]] = {
        "runner": runners,
        "stage": {s.value for s in BuildStage},
        "state": {s.value for s in BuildState},
        "executor_stage": {s.value for s in ExecutorStage},
        "executor": {str(e) for e in EXECUTORS},
        "failure_reason": {r.value for r in FailureReason},
        "level": {level.value for level in instruments.ErrorLevel},
        "generation": {str(g) for g in range(len(gc.get_stats()))},
        "type": MACHINE_EVENTS,
        "endpoint": {e.value for e in Endpoint},
        "operation": set(instruments.CACHE_OPERATIONS),
        "result": set(instruments.CACHE_RESULTS),
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
