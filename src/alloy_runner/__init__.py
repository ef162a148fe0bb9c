"""alloy-runner: a CI runner built to be watched."""

from __future__ import annotations

__all__ = ["__version__"]


def __getattr__(name: str) -> str:
    # Lazy: the build helper (`python -m alloy_runner.helper`) starts inside every build
    # and must not pay for what version.py imports (subprocess, platform, json).
    if name == "__version__":
        from alloy_runner.version import __version__

        return __version__
    raise AttributeError(name)
