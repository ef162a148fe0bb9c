"""A job's span ends before its result is recorded: the pipeline run's span, which the last
result ends, is then never ended before one of its jobs' spans (a child ends first)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alloy_runner.build.build import Build, BuildPaths, BuildResult
from alloy_runner.build.job import Job
from alloy_runner.build.ports import NoJobSpan
from alloy_runner.build.states import BuildStage, BuildState, FailureReason
from alloy_runner.config.model import RunnerConfig
from tests.support.fakes import FakeExecutor, FakeJobSource, RecordingMetrics, exits, make_job


class _Span(NoJobSpan):
    def __init__(self, events: list[str]) -> None:
        self.events = events

    def finished(self, state: BuildState, reason: FailureReason | None) -> None:
        self.events.append("span ended")


class _Tracer:
    def __init__(self, events: list[str]) -> None:
        self.events = events

    def job_started(self, runner: str, job: Job, *, url: str = "", worker_id: str = "") -> _Span:
        return _Span(self.events)


class _Source(FakeJobSource):
    def __init__(self, job: Job, events: list[str]) -> None:
        super().__init__([job])
        self.events = events

    async def finish(self, job: Job, result: BuildResult) -> None:
        self.events.append("result recorded")
        await super().finish(job, result)


def test_the_span_ends_before_the_result_is_recorded(tmp_path: Path) -> None:
    events: list[str] = []
    job = make_job(3, ["true"])
    build = Build(
        job,
        RunnerConfig(name="r1"),
        executor=FakeExecutor({BuildStage.BUILD_SCRIPT: exits(0)}),
        source=_Source(job, events),
        metrics=RecordingMetrics(),
        paths=BuildPaths(tmp_path / "builds", tmp_path / "cache"),
        tracer=_Tracer(events),
    )
    result = asyncio.run(build.run())
    assert result.state is BuildState.SUCCESS
    assert events == ["span ended", "result recorded"]
