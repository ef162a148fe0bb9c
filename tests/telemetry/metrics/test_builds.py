"""BuildTelemetry (the build families) on a fresh registry, read with `get_sample_value`."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry

from alloy_runner.build.build import Build, BuildPaths
from alloy_runner.build.ports import NoMetrics
from alloy_runner.build.registry import BuildRegistry
from alloy_runner.build.states import (
    FINAL_STATES,
    IDLE,
    BuildStage,
    BuildState,
    ExecutorStage,
    FailureReason,
)
from alloy_runner.config.model import RunnerConfig
from alloy_runner.telemetry.metrics.builds import BuildTelemetry
from alloy_runner.telemetry.metrics.setup import Telemetry
from tests.support.fakes import FakeExecutor, FakeJobSource, make_job

RUNNERS = [RunnerConfig(name="a", limit=3), RunnerConfig(name="b")]


def install(
    telemetry: Telemetry,
    registry: BuildRegistry | None = None,
    requests: dict[str, int] | None = None,
) -> BuildTelemetry:
    return BuildTelemetry(
        telemetry,
        registry if registry is not None else BuildRegistry(),
        runners=lambda: RUNNERS,
        requests=lambda: requests if requests is not None else {},
    )


def value(telemetry: Telemetry, name: str, **labels: str) -> float | None:
    registry: CollectorRegistry = telemetry.registry
    return registry.get_sample_value(name, labels)


def test_every_job_state_and_failure_reason_starts_at_zero(telemetry: Telemetry) -> None:
    """Before any job, each runner has every final state and failure reason at 0."""
    install(telemetry)
    for runner in ("a", "b"):
        for state in FINAL_STATES:
            assert value(telemetry, "ci_runner_jobs_total", runner=runner, state=state.value) == 0
        for reason in FailureReason:
            labels = {"runner": runner, "failure_reason": reason.value}
            assert value(telemetry, "ci_runner_failed_jobs_total", **labels) == 0
    assert value(telemetry, "ci_runner_jobs_total", runner="a", state="running") is None


def test_a_finished_job_counts_its_state_reason_and_duration(telemetry: Telemetry) -> None:
    """`job_finished` adds one to the state and reason, and observes the duration."""
    builds = install(telemetry)
    builds.job_finished("a", BuildState.FAILED, FailureReason.SCRIPT_FAILURE, 42.0)
    builds.job_finished("a", BuildState.SUCCESS, None, 2.0)
    assert value(telemetry, "ci_runner_jobs_total", runner="a", state="failed") == 1
    assert value(telemetry, "ci_runner_jobs_total", runner="a", state="success") == 1
    assert value(telemetry, "ci_runner_jobs_total", runner="b", state="success") == 0
    failed = {"runner": "a", "failure_reason": "script_failure"}
    assert value(telemetry, "ci_runner_failed_jobs_total", **failed) == 1
    assert value(telemetry, "ci_runner_job_duration_seconds_count", runner="a") == 2
    assert value(telemetry, "ci_runner_job_duration_seconds_sum", runner="a") == 44.0
    assert value(telemetry, "ci_runner_job_duration_seconds_bucket", runner="a", le="30") == 1
    assert value(telemetry, "ci_runner_job_duration_seconds_bucket", runner="a", le="60") == 2


def test_a_recovered_job_of_unknown_duration_is_counted_but_not_timed(
    telemetry: Telemetry,
) -> None:
    """A job finished without a duration counts in jobs_total and adds no duration sample."""
    builds = install(telemetry)
    builds.job_finished("a", BuildState.FAILED, FailureReason.RUNNER_SYSTEM_FAILURE, None)
    assert value(telemetry, "ci_runner_jobs_total", runner="a", state="failed") == 1
    assert value(telemetry, "ci_runner_job_duration_seconds_count", runner="a") is None


def test_stage_and_queue_durations_are_observed_per_label(telemetry: Telemetry) -> None:
    """Stage durations are observed per runner and stage; queue times when the source knows them."""
    builds = install(telemetry)
    builds.stage_finished("a", BuildStage.BUILD_SCRIPT, 0.3)
    builds.stage_finished("a", BuildStage.BUILD_SCRIPT, 0.4)
    builds.job_picked("a", 12.0)
    builds.job_picked("a", None)
    stage = {"runner": "a", "stage": "build_script"}
    assert value(telemetry, "ci_runner_job_stage_duration_seconds_count", **stage) == 2
    assert value(telemetry, "ci_runner_job_stage_duration_seconds_bucket", **stage, le="0.5") == 2
    assert value(telemetry, "ci_runner_job_queue_duration_seconds_count", runner="a") == 1
    assert value(telemetry, "ci_runner_job_queue_duration_seconds_sum", runner="a") == 12.0


def test_limit_and_request_concurrency_are_read_at_collection(telemetry: Telemetry) -> None:
    """`ci_runner_limit` and `ci_runner_request_concurrency` show the values of each scrape."""
    requests = {"a": 2}
    install(telemetry, requests=requests)
    assert value(telemetry, "ci_runner_limit", runner="a") == 3
    assert value(telemetry, "ci_runner_limit", runner="b") == 0
    assert value(telemetry, "ci_runner_request_concurrency", runner="a") == 2
    assert value(telemetry, "ci_runner_request_concurrency", runner="b") == 0
    requests["a"] = 0
    requests["b"] = 1
    assert value(telemetry, "ci_runner_request_concurrency", runner="a") == 0
    assert value(telemetry, "ci_runner_request_concurrency", runner="b") == 1


def test_running_builds_are_counted_by_stage_state_and_executor_stage(
    telemetry: Telemetry, tmp_path: Path
) -> None:
    """`ci_runner_builds` counts live builds by labels, beside an idle series for each runner."""
    registry = BuildRegistry()
    install(telemetry, registry)
    for job_id in (1, 2):
        build = Build(
            make_job(job_id),
            RUNNERS[0],
            executor=FakeExecutor(),
            source=FakeJobSource(),
            metrics=NoMetrics(),
            paths=BuildPaths(tmp_path, tmp_path),
        )
        build.state, build.stage = BuildState.RUNNING, BuildStage.BUILD_SCRIPT
        build.executor_stage = ExecutorStage.PREPARE
        registry.add(build)
    running = {
        "runner": "a",
        "stage": "build_script",
        "state": "running",
        "executor_stage": "prepare",
    }
    idle = {"stage": IDLE, "state": IDLE, "executor_stage": IDLE}
    assert value(telemetry, "ci_runner_builds", **running) == 2
    assert value(telemetry, "ci_runner_builds", runner="a", **idle) == 0
    assert value(telemetry, "ci_runner_builds", runner="b", **idle) == 0
    for build in registry.snapshot():
        registry.remove(build)
    assert value(telemetry, "ci_runner_builds", **running) is None
