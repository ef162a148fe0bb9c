"""Fixtures of the job tests: a rig per test, and one runner shared by a module's plain jobs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.jobs import JobsRig
from tests.support.runner import RunnerProcess


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[JobsRig]:
    """Return a JobsRig under `tmp_path`; its runners and blocked jobs end at teardown."""
    the_rig = JobsRig(tmp_path)
    try:
        yield the_rig
    finally:
        the_rig.stop_all()


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[JobsRig, RunnerProcess]]:
    """Return a rig and its running runner (concurrent = 4), shared by one test module.

    Tests that use it submit their own projects and look only at their own jobs.
    """
    the_rig = JobsRig(tmp_path_factory.mktemp("jobs"))
    try:
        yield the_rig, the_rig.runner(the_rig.config(concurrent=4))
    finally:
        the_rig.stop_all()
