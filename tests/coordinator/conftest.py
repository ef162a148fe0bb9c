"""Fixtures of the coordinator tests: a fake coordinator, and runners configured to use it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support import RunnerProcess, StartRunner
from tests.support.fake_coordinator import FakeCoordinator

StartFake = Callable[..., FakeCoordinator]


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
def start_gitlab_runner(start_runner: StartRunner) -> Callable[..., RunnerProcess]:
    """Return `start(fake, **config_kwargs)`: a real `alloy-runner run` using `fake`."""

    def start(fake: FakeCoordinator, **kwargs: Any) -> RunnerProcess:
        return start_runner(gitlab_config(fake, **kwargs))

    return start
