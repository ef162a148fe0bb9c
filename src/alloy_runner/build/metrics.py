"""What a build reports as it happens; telemetry implements it, tests can record it."""

from __future__ import annotations

from typing import Protocol

from alloy_runner.build.states import BuildStage, BuildState, FailureReason


class BuildMetrics(Protocol):
    """Events of a build, recorded when they happen."""

    def job_picked(self, runner: str, queued_seconds: float | None) -> None:
        """A runner took a job that waited `queued_seconds` in the queue (None: unknown)."""

    def stage_finished(self, runner: str, stage: BuildStage, seconds: float) -> None:
        """A stage of a build ended after `seconds`."""

    def job_finished(
        self, runner: str, state: BuildState, reason: FailureReason | None, seconds: float | None
    ) -> None:
        """A build ended in a final `state` after `seconds` (None: unknown, e.g. recovered)."""


class NoMetrics:
    """A BuildMetrics that records nothing (the `exec` command)."""

    def job_picked(self, runner: str, queued_seconds: float | None) -> None:
        pass

    def stage_finished(self, runner: str, stage: BuildStage, seconds: float) -> None:
        pass

    def job_finished(
        self, runner: str, state: BuildState, reason: FailureReason | None, seconds: float | None
    ) -> None:
        pass
