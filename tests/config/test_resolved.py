"""config.toml's wire values load as enums, and its directories as resolved Paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from alloy_runner.config.load import parse_config
from alloy_runner.config.model import (
    ExecutorName,
    SpoolRecovery,
    embedded_default,
    exec_runner,
)
from alloy_runner.exceptions import ConfigError


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


def test_directories_are_resolved_when_loaded(home: Path) -> None:
    config = parse_config(
        '[[runners]]\nname = "a"\nbuilds_dir = "~/b"\ncache_dir = "/srv/cache"\n'
        '[[runners]]\nname = "d"\n',
        "config.toml",
    )
    set_dirs, defaults = config.runners
    assert (set_dirs.builds_dir, set_dirs.cache_dir) == (home / "b", Path("/srv/cache"))
    assert defaults.builds_dir == home / ".alloy-runner" / "builds"
    assert defaults.cache_dir == home / ".alloy-runner" / "cache"
    (embedded,) = embedded_default().runners
    assert (embedded.builds_dir, embedded.cache_dir) == (defaults.builds_dir, defaults.cache_dir)


def test_exec_builds_in_its_own_directory_unless_told(home: Path) -> None:
    assert exec_runner().builds_dir == home / ".alloy-runner" / "builds" / "exec"
    assert exec_runner(home / "here").builds_dir == home / "here"
    assert exec_runner().cache_dir == home / ".alloy-runner" / "cache"


def test_executor_and_recovery_are_enums() -> None:
    config = parse_config(
        'spool_recovery = "requeue"\n[[runners]]\nname = "m"\nexecutor = "docker+machine"\n'
        '[runners.machine]\nMachineDriver = "local"\nMachineName = "m-%s"\n',
        "config.toml",
    )
    assert config.spool_recovery is SpoolRecovery.REQUEUE
    assert config.runners[0].executor is ExecutorName.DOCKER_MACHINE
    assert parse_config("", "c").spool_recovery is SpoolRecovery.FAIL


def test_an_unknown_executor_names_the_choices() -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config('[[runners]]\nname = "a"\nexecutor = "kubernetes"\n', "config.toml")
    assert str(raised.value) == (
        "config.toml: key 'runners[0].executor': expected one of shell, docker, docker+machine, "
        "docker-ssh+machine, got 'kubernetes'"
    )
