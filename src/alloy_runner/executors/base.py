"""The Executor protocol that a Build runs its stage scripts through."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from alloy_runner.build.states import BuildStage, ExecutorStage

if TYPE_CHECKING:
    from alloy_runner.build.job import Job


class Outcome(Enum):
    """How a stage script ended."""

    EXITED = "exited"
    TIMED_OUT = "timed_out"
    CANCELED = "canceled"


@dataclass(frozen=True)
class ScriptResult:
    outcome: Outcome
    exit_code: int | None = None

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.EXITED and self.exit_code == 0


@dataclass(frozen=True)
class Workspace:
    """Where a build runs: its project directory, and a private temporary directory;
    `archives_dir`: where the runner's host writes the artifacts it uploads, when `tmp_dir`
    is one the job can write from elsewhere (a container's mount)."""

    project_dir: Path
    tmp_dir: Path
    archives_dir: Path | None = None


@dataclass(frozen=True)
class ResourceUsage:
    """What a build's scripts used: CPU time and the peak of memory."""

    cpu_seconds: float
    memory_peak_bytes: int


class Executor(Protocol):
    """Prepare a place for one build, run its stage scripts there, and clean up."""

    name: str

    async def prepare(
        self,
        workspace_hint: Path,
        set_stage: Callable[[ExecutorStage], None],
        *,
        job: Job | None = None,
        output: Callable[[bytes], None] | None = None,
    ) -> Workspace:
        """Make the workspace ready for `job` (a machine executor acquires its machine here).

        `output` takes lines for the job's log (pulling images, starting services).
        """

    async def run(
        self,
        script: str,
        *,
        workspace: Workspace,
        env: Mapping[str, str],
        output: Callable[[bytes], None],
        timeout: float | None,
        cancel: asyncio.Event,
        stage: BuildStage = BuildStage.BUILD_SCRIPT,
    ) -> ScriptResult:
        """Run one bash script of `stage` in the workspace, streaming its output, until it ends."""

    async def cleanup(self, set_stage: Callable[[ExecutorStage], None]) -> None:
        """Release what prepare took; never raises."""

    def usage(self) -> ResourceUsage | None:
        """Return what the build's scripts used once cleanup ran (None: not measured)."""
