"""1,000 jobs through a Scheduler add no series: every family stays within its closed label sets.

In-process: the same instruments the daemon installs, fed by real Builds on a
FakeExecutor whose outcomes cycle through success, failure, timeout and
cancel, scraped from the registry while the jobs run.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric

from alloy_runner.app.scheduler import RunnerSlot, Scheduler
from alloy_runner.build.registry import BuildRegistry
from alloy_runner.build.states import IDLE, BuildStage, BuildState
from alloy_runner.config.model import RunnerConfig
from alloy_runner.coordinator.api_metrics import Endpoint
from alloy_runner.executors.base import Outcome, ScriptResult
from alloy_runner.telemetry.catalog import instruments
from alloy_runner.telemetry.metrics.api import ApiTelemetry
from alloy_runner.telemetry.metrics.builds import BuildTelemetry
from alloy_runner.telemetry.metrics.log_counter import ErrorCounter
from alloy_runner.telemetry.metrics.machines import (
    install_machine_telemetry,
    observe_machine_states,
)
from alloy_runner.telemetry.metrics.runtime import GcTimer, install_runtime
from alloy_runner.telemetry.metrics.setup import Telemetry
from alloy_runner.version import build_info
from tests.support.fakes import Changes, FakeExecutor, FakeJobSource, Run, make_job
from tests.support.series import check_series

JOBS = 1000
RUNNERS = [RunnerConfig(name="r1", limit=3), RunnerConfig(name="r2", request_concurrency=2)]
# What the build script of job n does: n modulo the length picks one.
OUTCOMES = (
    ScriptResult(Outcome.EXITED, 0),
    ScriptResult(Outcome.EXITED, 1),
    ScriptResult(Outcome.EXITED, 0),
    ScriptResult(Outcome.TIMED_OUT),
    ScriptResult(Outcome.CANCELED),
)


@dataclass
class Process:
    """The instruments of one `run` process, as the daemon installs them, on a fresh registry."""

    telemetry: Telemetry
    scheduler: Scheduler
    sources: dict[str, FakeJobSource]
    api: ApiTelemetry
    timer: GcTimer

    def families(self) -> dict[str, Metric]:
        registry: CollectorRegistry = self.telemetry.registry
        # As a scrape parses them; `target_info` (type info) is the resource, not a family.
        return {m.name: m for m in registry.collect() if m.type != "info"}


@pytest.fixture
def process(tmp_path: Path) -> Iterator[Process]:
    """Return the instruments with a Scheduler over two runners; all removed at teardown."""
    telemetry = Telemetry(build_info(), registry=CollectorRegistry())
    errors = ErrorCounter(telemetry)
    logging.getLogger("alloy_runner").addHandler(errors)
    sources = {r.name: FakeJobSource() for r in RUNNERS}
    registry = BuildRegistry()
    runners = [
        RunnerConfig(
            r.name,
            limit=r.limit,
            request_concurrency=r.request_concurrency,
            builds_dir=tmp_path / "builds",
            cache_dir=tmp_path / "cache",
        )
        for r in RUNNERS
    ]
    slots = [RunnerSlot(r, sources[r.name]) for r in runners]
    builds = BuildTelemetry(
        telemetry,
        registry,
        runners=lambda: runners,
        requests=lambda: scheduler.requests(),  # the scheduler made below, as the daemon does
    )
    scheduler = Scheduler(
        4,
        slots,
        registry=registry,
        metrics=builds,
        executor_for=lambda cfg: FakeExecutor({BuildStage.BUILD_SCRIPT: scripted}),
    )
    install_machine_telemetry(telemetry)
    observe_machine_states(telemetry, lambda executor: {})
    labels = build_info().labels()
    telemetry.observe(instruments.VERSION_INFO, lambda: [(1.0, labels)])
    telemetry.observe(instruments.CONCURRENT, lambda: float(scheduler.concurrent))
    timer = install_runtime(telemetry)
    try:
        yield Process(telemetry, scheduler, sources, ApiTelemetry(telemetry), timer)
    finally:
        timer.uninstall()
        logging.getLogger("alloy_runner").removeHandler(errors)
        telemetry.shutdown(timeout=1.0)


async def scripted(run: Run) -> ScriptResult:
    """End job n's build script as OUTCOMES[n % len(OUTCOMES)] says."""
    return OUTCOMES[int(run.env["CI_JOB_ID"]) % len(OUTCOMES)]


def test_a_thousand_jobs_add_no_series_beyond_the_closed_label_sets(process: Process) -> None:
    """After 1,000 jobs of every outcome each family stays within its closed label sets."""
    runner_names = {r.name for r in RUNNERS}
    before = check_series(process.families(), runner_names)
    ids = itertools.count(1)
    for _ in range(JOBS // len(RUNNERS)):
        for source in process.sources.values():
            source.add(make_job(next(ids), queued_seconds=0.5))
    scrapes = 0
    changes = Changes()  # one notification for both sources
    for source in process.sources.values():
        source.changes = changes

    def done() -> int:
        return sum(len(s.results) for s in process.sources.values())

    async def main() -> None:
        nonlocal scrapes
        process.scheduler.start()
        while (seen := done()) < JOBS:
            check_series(process.families(), runner_names)  # a scrape while jobs run
            scrapes += 1
            for status in (200, 500, 204):  # API calls add their own closed series
                process.api.request_done("r1", Endpoint.REQUEST_JOB, status, 0.01)
            await changes.wait_until(lambda: done() >= min(seen + 100, JOBS), timeout=60)
        await process.scheduler.stop_taking()
        assert await process.scheduler.drain(10)

    asyncio.run(main())
    families = process.families()
    states = [r.state for s in process.sources.values() for r in s.results.values()]
    assert len(states) == JOBS
    assert set(states) == {
        BuildState.SUCCESS,
        BuildState.FAILED,
        BuildState.TIMEDOUT,
        BuildState.CANCELED,
    }
    jobs = families["ci_runner_jobs"]
    total = sum(s.value for s in jobs.samples if s.name == "ci_runner_jobs_total")
    assert total == JOBS
    idle = {
        (s.labels["runner"], s.labels["stage"], s.value)
        for s in families["ci_runner_builds"].samples
    }
    assert idle == {("r1", IDLE, 0.0), ("r2", IDLE, 0.0)}, "no build left"
    after = check_series(families, runner_names)
    assert scrapes >= 3, "scrapes were taken while the jobs ran"
    # Jobs add their stage, duration and queue series, and the API calls theirs, once.
    assert after <= before + len(RUNNERS) * (len(BuildStage) + 2) + 3 + 1
