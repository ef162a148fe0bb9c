"""`Scheduler` in-process: `concurrent`, `limit` and `request_concurrency`, with fake sources."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import pytest

from alloy_runner.app import scheduler as scheduler_module
from alloy_runner.app.scheduler import RunnerSlot, Scheduler
from alloy_runner.build.registry import BuildRegistry
from alloy_runner.build.states import BuildStage, BuildState, FailureReason
from alloy_runner.config.model import RunnerConfig
from alloy_runner.executors.base import ScriptResult
from tests.support.fakes import (
    Changes,
    FakeExecutor,
    FakeJobSource,
    JobPicked,
    RecordingMetrics,
    Run,
    make_job,
    waits_for,
)

T = TypeVar("T")
SETTLE_ROUNDS = 50


async def settle() -> None:
    """Let every ready task run until the loop is quiet (no time passes; nothing is slept)."""
    for _ in range(SETTLE_ROUNDS):
        await asyncio.sleep(0)


class Running:
    """Builds whose script is running now, per runner, with the most seen at once."""

    def __init__(self, changes: Changes) -> None:
        self.changes = changes
        self.now: Counter[str] = Counter()
        self.most: Counter[str] = Counter()
        self.most_total = 0
        self.release = asyncio.Event()

    async def act(self, run: Run) -> ScriptResult:
        runner = run.env["CI_RUNNER_DESCRIPTION"]
        self.now[runner] += 1
        self.most[runner] = max(self.most[runner], self.now[runner])
        self.most_total = max(self.most_total, self.now.total())
        self.changes.notify()
        try:
            return await waits_for(self.release)(run)
        finally:
            self.now[runner] -= 1
            self.changes.notify()


class Rig:
    """A Scheduler over runners with FakeJobSources; builds block until `running.release`."""

    def __init__(self, tmp_path: Path, concurrent: int, *runners: RunnerConfig) -> None:
        self.changes = Changes()  # one notification for every source and build
        self.running = Running(self.changes)
        self.registry = BuildRegistry()
        self.metrics = RecordingMetrics()
        self.sources = {r.name: FakeJobSource() for r in runners}
        for source in self.sources.values():
            source.changes = self.changes
        slots = [RunnerSlot(replace_dirs(r, tmp_path), self.sources[r.name]) for r in runners]
        self.scheduler = Scheduler(
            concurrent,
            slots,
            registry=self.registry,
            metrics=self.metrics,
            executor_for=lambda cfg: FakeExecutor({BuildStage.BUILD_SCRIPT: self.running.act}),
        )

    def queue(self, runner: str, count: int, first_id: int = 1) -> None:
        self.sources[runner].add(*(make_job(first_id + n) for n in range(count)))

    async def until(self, predicate: Callable[[], bool]) -> None:
        await self.changes.wait_until(predicate)

    def done(self) -> int:
        return sum(len(s.results) for s in self.sources.values())


def replace_dirs(config: RunnerConfig, tmp_path: Path) -> RunnerConfig:
    """Return `config` with its builds and cache directories under `tmp_path`."""
    return replace(config, builds_dir=tmp_path / "builds", cache_dir=tmp_path / "cache")


def run(main: Callable[[], Awaitable[T]]) -> T:
    async def wrapped() -> T:
        return await asyncio.wait_for(main(), 30)

    return asyncio.run(wrapped())


async def finish(rig: Rig, total: int) -> None:
    """Release every build, wait for `total` results, and stop the scheduler."""
    rig.running.release.set()
    await rig.until(lambda: rig.done() >= total)
    await rig.scheduler.stop_taking()
    assert await rig.scheduler.drain(10)


def test_concurrent_bounds_the_builds_of_all_runners_together(tmp_path: Path) -> None:
    """With concurrent = 2 and six queued jobs on two runners, at most two builds run at once."""
    rig = Rig(tmp_path, 2, RunnerConfig(name="a"), RunnerConfig(name="b"))
    rig.queue("a", 3, 1)
    rig.queue("b", 3, 11)

    async def main() -> None:
        rig.scheduler.start()
        await rig.until(lambda: rig.running.now.total() == 2)
        await settle()
        assert rig.running.now.total() == 2
        assert rig.registry.count() == 2
        assert rig.scheduler.requests() == {"a": 0, "b": 0}, "no request while there is no room"
        await finish(rig, 6)

    run(main)
    assert rig.running.most_total == 2
    assert rig.done() == 6


def test_limit_bounds_one_runner_and_leaves_the_others_free(tmp_path: Path) -> None:
    """`limit = 1` lets runner a run one build at a time while runner b runs three."""
    rig = Rig(tmp_path, 10, RunnerConfig(name="a", limit=1), RunnerConfig(name="b"))
    rig.queue("a", 3, 1)
    rig.queue("b", 3, 11)

    async def main() -> None:
        rig.scheduler.start()
        await rig.until(lambda: rig.running.now["b"] == 3 and rig.running.now["a"] == 1)
        await settle()
        assert rig.registry.count("a") == 1
        await finish(rig, 6)

    run(main)
    assert rig.running.most == {"a": 1, "b": 3}


@pytest.mark.parametrize("request_concurrency", [1, 3])
def test_request_concurrency_is_the_number_of_requests_in_flight(
    tmp_path: Path, request_concurrency: int
) -> None:
    """A runner keeps its used limit of job requests in flight, and reports them.

    As GitLab Runner's adaptive request concurrency: the limit starts at 1 and
    grows with the jobs taken, up to `request_concurrency`; none were taken here.
    """
    rig = Rig(tmp_path, 10, RunnerConfig(name="a", request_concurrency=request_concurrency))
    source = rig.sources["a"]
    source.gate.clear()

    async def main() -> None:
        rig.scheduler.start()
        await source.wait_until(lambda: source.in_flight == 1)
        await settle()
        assert rig.scheduler.requests() == {"a": 1}
        assert rig.scheduler.request_limits() == {"a": (1.0, 1)}
        source.gate.set()
        await rig.scheduler.stop_taking()

    run(main)
    assert source.max_in_flight == 1 <= request_concurrency
    assert rig.scheduler.requests() == {"a": 0}


def test_without_adaptive_concurrency_request_concurrency_requests_are_in_flight(
    tmp_path: Path,
) -> None:
    """FF_USE_ADAPTIVE_REQUEST_CONCURRENCY = false: the limit is request_concurrency at once."""
    flags = (("FF_USE_ADAPTIVE_REQUEST_CONCURRENCY", False),)
    rig = Rig(tmp_path, 10, RunnerConfig(name="a", request_concurrency=3, feature_flags=flags))
    source = rig.sources["a"]
    source.gate.clear()

    async def main() -> None:
        rig.scheduler.start()
        await source.wait_until(lambda: source.in_flight == 3)
        await settle()
        assert rig.scheduler.requests() == {"a": 3}
        assert rig.scheduler.request_limits()["a"][1] == 3
        source.gate.set()
        await rig.scheduler.stop_taking()

    run(main)
    assert source.max_in_flight == 3


@pytest.mark.parametrize("adaptive", [True, False])
def test_the_adaptive_limit_moves_only_with_adaptive_concurrency(
    tmp_path: Path, adaptive: bool
) -> None:
    """Jobs taken grow the adaptive limit; with FF_USE_ADAPTIVE_REQUEST_CONCURRENCY = false it
    stays where it is, as GitLab Runner's releaseRequest skips the update."""
    flags = (("FF_USE_ADAPTIVE_REQUEST_CONCURRENCY", adaptive),)
    rig = Rig(tmp_path, 10, RunnerConfig(name="a", request_concurrency=4, feature_flags=flags))
    rig.queue("a", 4)

    async def main() -> None:
        rig.scheduler.start()
        await rig.until(lambda: rig.running.now["a"] == 4)
        await finish(rig, 4)

    run(main)
    slot = rig.scheduler.runners[0]
    if adaptive:
        assert slot.adaptive > 1.0
    else:
        assert slot.adaptive == 0.0
        assert rig.scheduler.request_limits() == {"a": (1.0, 4)}


def test_requests_wait_for_room_before_they_are_sent(tmp_path: Path) -> None:
    """With concurrent = 1 and one build running, no request is sent despite request_concurrency."""
    rig = Rig(tmp_path, 1, RunnerConfig(name="a", request_concurrency=4))
    rig.queue("a", 2)
    source = rig.sources["a"]

    async def main() -> None:
        rig.scheduler.start()
        await rig.until(lambda: rig.running.now["a"] == 1)
        await settle()
        asked = source.requests
        assert source.in_flight == 0
        await settle()
        assert source.requests == asked, "no request while the only slot is taken"
        await finish(rig, 2)

    run(main)
    assert source.max_in_flight == 1


def test_raising_concurrent_starts_waiting_jobs_and_lowering_it_stops_new_ones(
    tmp_path: Path,
) -> None:
    """`set_concurrent` up starts queued jobs at once; down lets running builds finish."""
    rig = Rig(tmp_path, 1, RunnerConfig(name="a"))
    rig.queue("a", 4)

    async def main() -> None:
        rig.scheduler.start()
        await rig.until(lambda: rig.running.now["a"] == 1)
        await rig.scheduler.set_concurrent(3)
        await rig.until(lambda: rig.running.now["a"] == 3)
        await rig.scheduler.set_concurrent(1)
        await settle()
        assert rig.running.now["a"] == 3, "running builds are not stopped"
        await finish(rig, 4)

    run(main)
    assert rig.running.most["a"] == 3


def test_each_build_gets_the_lowest_free_slot_of_its_project(tmp_path: Path) -> None:
    """Concurrent builds of one project run in slots 0, 1, 2 (CI_CONCURRENT_ID)."""
    rig = Rig(tmp_path, 3, RunnerConfig(name="a"))
    rig.queue("a", 3)
    seen: list[str] = []

    async def main() -> None:
        rig.scheduler.start()
        await rig.until(lambda: rig.running.now["a"] == 3)
        seen.extend(b.project_dir.parent.name for b in rig.registry.snapshot())
        await finish(rig, 3)

    run(main)
    assert sorted(seen) == ["0", "1", "2"]


def test_terminate_ends_running_builds_as_interrupted(tmp_path: Path) -> None:
    """`terminate` ends every running build as terminated (runner_interrupted) and reports it."""
    rig = Rig(tmp_path, 2, RunnerConfig(name="a"))
    rig.queue("a", 2)
    source = rig.sources["a"]

    async def main() -> None:
        rig.scheduler.start()
        await rig.until(lambda: rig.running.now["a"] == 2)
        await rig.scheduler.stop_taking()
        assert not await rig.scheduler.drain(0.01)
        await rig.scheduler.terminate(10)

    run(main)
    assert {r.state for r in source.results.values()} == {BuildState.TERMINATED}
    assert {r.failure_reason for r in source.results.values()} == {FailureReason.RUNNER_INTERRUPTED}
    assert rig.registry.count() == 0


def test_a_picked_job_reports_its_time_in_the_queue(tmp_path: Path) -> None:
    """Each job taken is reported once to the metrics with the queue time its source gave."""
    rig = Rig(tmp_path, 1, RunnerConfig(name="a"))
    rig.sources["a"].add(make_job(1, queued_seconds=4.5), make_job(2))

    async def main() -> None:
        rig.scheduler.start()
        await finish(rig, 2)

    run(main)
    assert rig.metrics.picked == [JobPicked("a", 4.5), JobPicked("a", None)]
    assert [f.state for f in rig.metrics.finished] == [BuildState.SUCCESS] * 2


def test_a_failing_request_is_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A source that raises on request is logged and asked again; the job then runs."""
    monkeypatch.setattr(scheduler_module, "ERROR_BACKOFF", 0.0)
    rig = Rig(tmp_path, 1, RunnerConfig(name="a"))
    source = rig.sources["a"]
    source.add(make_job(1))
    real_request = source.request
    failures = [RuntimeError("coordinator said 500")]

    async def flaky() -> Any:
        if failures:
            raise failures.pop()
        return await real_request()

    source.request = flaky  # type: ignore[method-assign]

    async def main() -> None:
        rig.scheduler.start()
        await finish(rig, 1)

    run(main)
    assert failures == []
    assert source.results[1].state is BuildState.SUCCESS


def test_after_stop_taking_no_job_is_requested_and_running_builds_go_on(tmp_path: Path) -> None:
    """`stop_taking` ends every request; a job queued afterwards stays queued, builds finish."""
    rig = Rig(tmp_path, 2, RunnerConfig(name="a", request_concurrency=2))
    rig.queue("a", 1)
    source = rig.sources["a"]

    async def main() -> None:
        rig.scheduler.start()
        await rig.until(lambda: rig.running.now["a"] == 1)
        await rig.scheduler.stop_taking()
        asked = source.requests
        source.add(make_job(2))
        await settle()
        assert source.requests == asked
        assert rig.scheduler.requests() == {"a": 0}
        rig.running.release.set()
        assert await rig.scheduler.drain(10)

    run(main)
    assert list(source.results) == [1]
    assert [job.id for job in source.jobs] == [2]
