"""Fixtures shared by every test module; the helpers behind them live in `tests.support`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import RunnerProcess, StartRunner


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
