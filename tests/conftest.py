"""Fixtures shared by every test: a runner process, the CLI in-process, a fake coordinator."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import RunnerProcess, StartRunner
from tests.support.cli import Invoke, make_invoke
from tests.support.fake_coordinator import FakeCoordinator, StartFake


@pytest.fixture
def start_runner(tmp_path: Path) -> Iterator[StartRunner]:
    """Return `start(config="", **kwargs)`: a started `RunnerProcess`, killed at teardown.

    Each process gets its own HOME under `tmp_path`; the keyword arguments are
    those of `RunnerProcess`.
    """
    started: list[RunnerProcess] = []

    def start(config: str | None = "", **kwargs: Any) -> RunnerProcess:
        home = tmp_path / f"runner-{len(started)}"
        home.mkdir()
        process = RunnerProcess(home, config, **kwargs)
        started.append(process)
        return process.start()

    try:
        yield start
    finally:
        for process in started:
            process.stop()


@pytest.fixture
def start_fake() -> Iterator[StartFake]:
    """Return `start(**kwargs)`: a started FakeCoordinator on 127.0.0.1, stopped at teardown."""
    started: list[FakeCoordinator] = []

    def start(**kwargs: Any) -> FakeCoordinator:
        fake = FakeCoordinator(**kwargs)
        started.append(fake)
        return fake.start()

    try:
        yield start
    finally:
        for fake in started:
            fake.stop()


@pytest.fixture
def invoke(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Invoke:
    """Return `invoke(args, env=None)`: `alloy-runner ARGS` in-process, with HOME at `tmp_path`.

    It returns a `Ran` (status, stdout, stderr); the daemon never starts.
    """
    return make_invoke(monkeypatch, capsys, tmp_path)


@pytest.fixture
def invoke_wiring(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Invoke:
    """Return `invoke(args, env=None)` like `invoke`, through the real `daemon.run` and `wire`.

    What the wiring refuses is refused as in the executable; if the parts are all
    built, the stub `Daemon` takes them down and fails the test instead of starting.
    """
    return make_invoke(monkeypatch, capsys, tmp_path, wiring=True)
