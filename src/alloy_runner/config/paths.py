"""Every default directory and file, resolved in one place."""

from __future__ import annotations

import os
from pathlib import Path


def default_home() -> Path:
    """Return the directory of the default config file and spool for this user."""
    if os.geteuid() == 0:
        return Path("/etc/alloy-runner")
    return Path.home() / ".alloy-runner"


def default_config_path() -> Path:
    """Return where `run` looks for config.toml when no `--config` is given."""
    return default_home() / "config.toml"


def default_spool_dir() -> Path:
    """Return the spool of the embedded default: `~/.alloy-runner/spool`."""
    return Path.home() / ".alloy-runner" / "spool"


_working_directory: list[Path] = []  # `run --working-directory`, once set


def set_working_directory(path: Path) -> None:
    """Make `path` the process's directory and the root of the default builds and cache dirs,
    as GitLab Runner's `run --working-directory` does."""
    os.chdir(path)
    _working_directory[:] = [path.resolve()]


def default_builds_dir() -> Path:
    """Return where builds run when a runner sets no `builds_dir`."""
    if _working_directory:
        return _working_directory[0] / "builds"
    return Path.home() / ".alloy-runner" / "builds"


def default_cache_dir() -> Path:
    """Return where caches are kept when a runner sets no `cache_dir`."""
    if _working_directory:
        return _working_directory[0] / "cache"
    return Path.home() / ".alloy-runner" / "cache"


def default_machines_dir() -> Path:
    """Return where the `local` machine driver keeps machines without a `local-root` option."""
    return Path.home() / ".alloy-runner" / "machines"
