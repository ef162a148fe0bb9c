"""The run process in-process: `wire` builds every part whole, the daemon starts and stops them."""

from __future__ import annotations

import dataclasses
import datetime
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from alloy_runner.app.daemon import Daemon, Stop
from alloy_runner.app.wiring import wire
from alloy_runner.config.load import load_config
from alloy_runner.config.model import embedded_default
from alloy_runner.coordinator.spool.store import Spool
from tests.support.cli import logging_kept

GUARD = 20.0  # seconds a wait may take before the test fails instead of hanging


@pytest.fixture(autouse=True)
def keep_logging() -> Iterator[None]:
    """`wire` configures this package's logging for the process; put it back afterwards."""
    with logging_kept():
        yield


def test_wire_builds_every_part_of_the_embedded_default(tmp_path: Path) -> None:
    """One spool runner, no metrics server: each part is there, none is left to fill in."""
    config = embedded_default().with_overrides(metrics_server="", spool_dir=tmp_path / "spool")
    parts = wire(config)
    try:
        assert isinstance(parts.spool, Spool)
        assert parts.machines is None  # no docker+machine runner
        assert parts.observability.server is None  # metrics_server is empty
        assert [slot.config.name for slot in parts.scheduler.runners] == ["embedded"]
        assert parts.reload.config is config
        assert parts.warnings == ()
        registry = parts.observability.telemetry.registry
        assert registry.get_sample_value("ci_runner_concurrent") == 1.0
        labels = {"runner": "embedded"}
        assert registry.get_sample_value("ci_runner_request_concurrency", labels) == 0.0
        assert registry.get_sample_value("ci_runner_limit", labels) == 0.0
    finally:
        parts.observability.shutdown(1.0)
        parts.runner.close()


def test_daemon_starts_and_stops_in_process(tmp_path: Path) -> None:
    """Ready once started, then a graceful stop with nothing running takes every part down."""
    config = embedded_default().with_overrides(
        metrics_server="127.0.0.1:0", spool_dir=tmp_path / "spool"
    )
    parts = wire(config)
    daemon = Daemon(parts)
    loop = parts.runner.get_loop()
    seen_ready: list[bool] = []

    def stop_once_ready() -> None:
        seen_ready.append(parts.ready.wait(GUARD))
        loop.call_soon_threadsafe(daemon.request_stop, Stop.GRACEFUL)

    stopper = threading.Thread(target=stop_once_ready, daemon=True)
    stopper.start()
    began = time.monotonic()
    daemon.run(began)
    stopper.join(GUARD)
    assert seen_ready == [True]
    assert not parts.ready.is_set()
    assert loop.is_closed()
    server = parts.observability.server
    assert server is not None
    with pytest.raises(RuntimeError, match="not started"):
        server.bound  # noqa: B018 -- shut down: no socket any more


def test_wire_rotates_only_expiring_tokens_and_keeps_a_rotated_one_in_force(
    tmp_path: Path,
) -> None:
    """A runner whose token expires is scheduled; the reload then holds its rotated token."""
    path = tmp_path / "config.toml"
    path.write_text(
        'metrics_server = ""\n'
        '[[runners]]\nname = "a"\nurl = "http://127.0.0.1:1"\ntoken = "glrt-a"\n'
        "token_obtained_at = 2030-01-01T00:00:00Z\ntoken_expires_at = 2030-01-05T00:00:00Z\n"
        '[[runners]]\nname = "b"\nurl = "http://127.0.0.1:1"\ntoken = "glrt-b"\n'
    )
    parts = wire(load_config(path))
    try:
        assert parts.rotation is not None
        assert parts.rotation.due() == ("a", datetime.datetime(2030, 1, 4, tzinfo=datetime.UTC))
        rotated = dataclasses.replace(parts.reload.config.runners[0], token="glrt-new")
        parts.reload.runner_rotated(rotated)
        assert [r.token for r in parts.reload.config.runners] == ["glrt-new", "glrt-b"]
    finally:
        parts.observability.shutdown(1.0)
        parts.runner.close()
    embedded = wire(embedded_default().with_overrides(metrics_server="", spool_dir=tmp_path / "s"))
    try:
        assert embedded.rotation is None
    finally:
        embedded.observability.shutdown(1.0)
        embedded.runner.close()
