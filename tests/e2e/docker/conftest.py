"""The container engine the docker executor's tests run their jobs on, started once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.engine import engine_fixture, tcp_engine_fixture
from tests.support.jobs import JobsRig

engine = pytest.fixture(scope="session", name="engine")(engine_fixture)
tcp_engine = pytest.fixture(scope="session", name="tcp_engine")(tcp_engine_fixture)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[JobsRig]:
    the_rig = JobsRig(tmp_path)
    try:
        yield the_rig
    finally:
        the_rig.stop_all()
