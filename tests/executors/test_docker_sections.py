"""EXECUTOR_JOB_SECTION_ATTEMPTS in-process: docker sections.run with scripted sections."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator

import docker.errors
import pytest
import requests

from alloy_runner.build.states import BuildStage
from alloy_runner.executors.base import Outcome, ScriptResult
from alloy_runner.executors.docker import sections

Section = Callable[[float | None], Awaitable[ScriptResult]]


def scripted(*ends: Exception | None) -> tuple[Section, list[int]]:
    """A section that raises each error of `ends` in turn (None: exits 0); counts its runs."""
    runs: list[int] = []

    async def once(left: float | None) -> ScriptResult:
        runs.append(len(runs) + 1)
        end = ends[min(len(runs), len(ends)) - 1]
        if end is not None:
            raise end
        return ScriptResult(Outcome.EXITED, 0)

    return once, runs


def attempt(
    once: Section,
    attempts: int,
    *,
    timeout: float | None = None,
    cancel: asyncio.Event | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[object, list[str]]:
    said: list[str] = []
    forgotten = iter(["c1", "c2", "c3"])

    async def main() -> ScriptResult:
        return await sections.run(
            once,
            attempts,
            BuildStage.BUILD_SCRIPT,
            said.append,
            lambda: next(forgotten),
            timeout=timeout,
            cancel=cancel or asyncio.Event(),
            clock=clock,
        )

    try:
        result: object = asyncio.run(main())
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


# --- the runs of a section share its time (GitLab's share the job's context) ---------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def vanishing_after(clock: Clock, *spent: float) -> tuple[Section, list[float | None]]:
    """A section whose run n takes `spent[n]` seconds of `clock` and then finds its container
    gone (the last run exits 0); records the seconds each run was given."""
    given: list[float | None] = []

    async def once(left: float | None) -> ScriptResult:
        given.append(left)
        clock.now += spent[len(given) - 1]
        if len(given) < len(spent):
            raise GONE
        return ScriptResult(Outcome.EXITED, 0)

    return once, given


def test_a_rerun_gets_only_the_time_left_of_the_section() -> None:
    clock = Clock()
    once, given = vanishing_after(clock, 12.0, 3.0, 1.0)
    result, said = attempt(once, 3, timeout=20.0, clock=clock)
    assert result == ScriptResult(Outcome.EXITED, 0)
    assert said.count("Retrying build_script") == 2
    assert given == [20.0, 8.0, 5.0]  # not 20 s each: the job's deadline is the same


def test_no_rerun_starts_when_the_time_is_spent_and_the_section_times_out() -> None:
    clock = Clock()
    once, given = vanishing_after(clock, 20.0, 1.0)
    result, said = attempt(once, 3, timeout=20.0, clock=clock)
    assert result == ScriptResult(Outcome.TIMED_OUT)
    assert given == [20.0]
    assert said == ['ERROR: Container "c1" not found or removed. Will retry...']


def test_no_rerun_starts_after_a_cancel() -> None:
    cancel = asyncio.Event()

    async def once(left: float | None) -> ScriptResult:
        runs.append(left)
        cancel.set()  # canceled while the container vanished
        raise GONE

    runs: list[float | None] = []
    result, said = attempt(once, 3, cancel=cancel)
    assert result == ScriptResult(Outcome.CANCELED)
    assert runs == [None]  # no timeout: each run is given none
    assert "Retrying build_script" not in said


class _BrokenClient:
    """An engine whose exec output breaks off mid-chunk, its container then gone."""

    class api:  # the docker SDK names it so
        @staticmethod
        def exec_start(exec_id: str, stream: bool) -> Iterator[bytes]:
            yield b"running\n"
            raise requests.exceptions.ChunkedEncodingError("Connection broken: IncompleteRead")

        @staticmethod
        def exec_inspect(exec_id: str) -> dict[str, object]:
            raise docker.errors.NotFound("no such exec")


def test_an_output_stream_that_breaks_off_is_a_vanished_container() -> None:
    """A stream broken mid-chunk (its container removed while it wrote) is not a runner error:
    the exec's end decides, here NotFound, which `run` retries."""
    got = bytearray()

    async def main() -> ScriptResult:
        async def stop() -> None:
            raise AssertionError("nothing to stop")

        return await sections.stream(
            _BrokenClient(),  # type: ignore[arg-type]
            "e1",
            output=got.extend,
            timeout=30.0,
            cancel=asyncio.Event(),
            stop=stop,
        )

    with pytest.raises(docker.errors.NotFound):
        asyncio.run(main())
    assert got == b"running\n"


class _PodmanGoneClient:
    """Podman's answer once the exec's container is gone: 500 "no such container"."""

    class api:  # the docker SDK names it so
        @staticmethod
        def exec_start(exec_id: str, stream: bool) -> Iterator[bytes]:
            yield b"running\n"

        @staticmethod
        def exec_inspect(exec_id: str) -> dict[str, object]:
            raise docker.errors.APIError(
                "500 Server Error",
                explanation="container 88ff does not exist in database: no such container",
            )


def test_podman_s_500_for_a_gone_container_is_a_vanished_container() -> None:
    """The reviewer's race seen in CI: podman's 500 "no such container" from exec_inspect is
    NotFound (the section runs again), not an engine failure of the job."""

    async def main() -> ScriptResult:
        async def stop() -> None:
            raise AssertionError("nothing to stop")

        return await sections.stream(
            _PodmanGoneClient(),  # type: ignore[arg-type]
            "e1",
            output=lambda _chunk: None,
            timeout=30.0,
            cancel=asyncio.Event(),
            stop=stop,
        )

    with pytest.raises(docker.errors.NotFound, match="no such container"):
        asyncio.run(main())
