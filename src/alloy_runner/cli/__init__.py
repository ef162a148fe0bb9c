"""The `alloy-runner` command: main and exit codes, and one module per group of commands."""

from __future__ import annotations

from alloy_runner.cli.main import main

__all__ = ["main"]
