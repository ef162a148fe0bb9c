"""The Executor protocol that a Build runs its stage scripts through."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Protocol

from alloy_runner.build.states import ExecutorStage


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
    """Where a build runs: its project directory, and a private temporary directory."""

    project_dir: Path
    tmp_dir: Path


class Executor(Protocol):
    """Prepare a place for one build, run its stage scripts there, and clean up."""

    name: str

    async def prepare(
        self, workspace_hint: Path, set_stage: Callable[[ExecutorStage], None]
    ) -> Workspace:
        """Make the workspace ready (a machine executor acquires its machine here)."""

    async def run(
        self,
        script: str,
        *,
        workspace: Workspace,
        env: Mapping[str, str],
        output: Callable[[bytes], None],
        timeout: float | None,
        cancel: asyncio.Event,
    ) -> ScriptResult:
        """Run one bash script in the workspace, streaming its output, until it ends."""

    async def cleanup(self, set_stage: Callable[[ExecutorStage], None]) -> None:
        """Release what prepare took; never raises."""
