"""Fixtures of the coordinator end-to-end tests: runners configured to use a fake coordinator."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import RunnerProcess, StartRunner
from tests.support.fake_coordinator import FakeCoordinator, StartGitlabRunner, gitlab_config


@pytest.fixture
def start_gitlab_runner(start_runner: StartRunner) -> StartGitlabRunner:
    """Return `start(fake, **config_kwargs)`: a real `alloy-runner run` using `fake`."""

    def start(fake: FakeCoordinator, **kwargs: Any) -> RunnerProcess:
        return start_runner(gitlab_config(fake, **kwargs))

    return start
