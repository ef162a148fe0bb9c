"""The container engine the docker executor's tests run their jobs on, started once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.engine import Engine, start_engine
from tests.support.jobs import JobsRig


@pytest.fixture(scope="session")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    the_engine = start_engine(tmp_path_factory.mktemp("engine"))
    try:
        yield the_engine
    finally:
        the_engine.stop()


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[JobsRig]:
    the_rig = JobsRig(tmp_path)
    try:
        yield the_rig
    finally:
        the_rig.stop_all()
