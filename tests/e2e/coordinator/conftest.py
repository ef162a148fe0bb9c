"""Fixtures of the coordinator end-to-end tests: runners configured to use a fake coordinator."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import RunnerProcess, StartRunner
from tests.support.fake_coordinator import FakeCoordinator, StartGitlabRunner


def gitlab_config(
    fake: FakeCoordinator, *, token: str | None = None, extra: str = "", top: str = ""
) -> str:
    """Return a config.toml with one runner `gl` taking jobs from `fake`."""
    return (
        f"concurrent = 4\ncheck_interval = 0.2\n{top}\n"
        "[[runners]]\n"
        'name = "gl"\n'
        f'url = "{fake.url}"\n'
        f'token = "{token if token is not None else fake.runner_token}"\n'
        f"{extra}"
    )


@pytest.fixture
def start_gitlab_runner(start_runner: StartRunner) -> StartGitlabRunner:
    """Return `start(fake, **config_kwargs)`: a real `alloy-runner run` using `fake`."""

    def start(fake: FakeCoordinator, **kwargs: Any) -> RunnerProcess:
        return start_runner(gitlab_config(fake, **kwargs))

    return start
