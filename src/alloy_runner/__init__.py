"""alloy-runner: a CI runner built to be watched."""

from __future__ import annotations

__all__ = ["__version__"]

from alloy_runner.version import __version__
