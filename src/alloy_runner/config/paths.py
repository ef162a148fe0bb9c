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


def default_builds_dir() -> Path:
    """Return where builds run when a runner sets no `builds_dir`."""
    return Path.home() / ".alloy-runner" / "builds"


def default_cache_dir() -> Path:
    """Return where caches are kept when a runner sets no `cache_dir`."""
    return Path.home() / ".alloy-runner" / "cache"


def default_machines_dir() -> Path:
    """Return where the `local` machine driver keeps machines without a `local-root` option."""
    return Path.home() / ".alloy-runner" / "machines"
