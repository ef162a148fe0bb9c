"""EXECUTOR_JOB_SECTION_ATTEMPTS in-process: docker sections.run with scripted sections."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import docker.errors
import pytest

from alloy_runner.build.states import BuildStage
from alloy_runner.executors.base import Outcome, ScriptResult
from alloy_runner.executors.docker import sections


def scripted(*ends: Exception | None) -> tuple[Callable[[], Awaitable[ScriptResult]], list[int]]:
    """A section that raises each error of `ends` in turn (None: exits 0); counts its runs."""
    runs: list[int] = []

    async def once() -> ScriptResult:
        runs.append(len(runs) + 1)
        end = ends[min(len(runs), len(ends)) - 1]
        if end is not None:
            raise end
        return ScriptResult(Outcome.EXITED, 0)

    return once, runs


def attempt(once: Callable[[], Awaitable[ScriptResult]], attempts: int) -> tuple[object, list[str]]:
    said: list[str] = []
    forgotten = iter(["c1", "c2", "c3"])
    try:
        result: object = asyncio.run(
            sections.run(
                once, attempts, BuildStage.BUILD_SCRIPT, said.append, lambda: next(forgotten)
            )
        )
    except docker.errors.APIError as exc:
        result = exc
    return result, said


GONE = docker.errors.NotFound("No such container")


def test_a_vanished_container_runs_the_section_again() -> None:
    once, runs = scripted(GONE, None)
    result, said = attempt(once, 2)
    assert result == ScriptResult(Outcome.EXITED, 0)
    assert runs == [1, 2]
    assert said == [
        'ERROR: Container "c1" not found or removed. Will retry...',
        "Retrying build_script",
    ]


def test_attempts_spent_raise_the_last_error_and_say_so() -> None:
    once, runs = scripted(GONE)
    result, said = attempt(once, 3)
    assert result is GONE
    assert runs == [1, 2, 3]
    assert said[-1] == "ERROR: Execution attempts exceeded"
    assert said.count("Retrying build_script") == 2


def test_one_attempt_raises_without_the_exceeded_line() -> None:
    once, runs = scripted(GONE)
    result, said = attempt(once, 1)
    assert result is GONE
    assert runs == [1]
    assert said == ['ERROR: Container "c1" not found or removed. Will retry...']


@pytest.mark.parametrize(
    "error",
    [docker.errors.APIError("500 engine"), docker.errors.ImageNotFound("no image")],
)
def test_other_errors_end_the_section_at_once(error: Exception) -> None:
    once, runs = scripted(error, None)
    result, said = attempt(once, 3)
    assert result is error
    assert runs == [1]
    assert said == []
