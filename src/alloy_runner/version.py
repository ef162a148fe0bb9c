"""Build information: version, revision, branch, built_at, python, os, arch."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

NAME = "alloy-runner"
UNKNOWN = "unknown"

# The one place the version is written: pyproject.toml reads it ([tool.hatch.version]).
# A constant, not importlib.metadata: reading the installed metadata costs every
# process ~1 MB of memory (email, zipfile, csv) for a string known here.
__version__ = "0.1.0"

_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}


@dataclass(frozen=True)
class BuildInfo:
    """What `--version` prints and `ci_runner_version_info` carries."""

    name: str
    version: str
    revision: str
    branch: str
    built_at: str
    python_version: str
    os: str
    architecture: str

    def labels(self) -> dict[str, str]:
        """Return the label set of `ci_runner_version_info`."""
        return {
            "architecture": self.architecture,
            "branch": self.branch,
            "built_at": self.built_at,
            "name": self.name,
            "os": self.os,
            "python_version": self.python_version,
            "revision": self.revision,
            "version": self.version,
        }

    def banner(self) -> str:
        """Return the multi-line text of `alloy-runner --version`."""
        return (
            f"Version:      {self.version}\n"
            f"Git revision: {self.revision}\n"
            f"Git branch:   {self.branch}\n"
            f"Python:       {self.python_version}\n"
            f"Built:        {self.built_at}\n"
            f"OS/Arch:      {self.os}/{self.architecture}"
        )


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=2, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _source_info(package_dir: Path) -> tuple[str, str, str]:
    """Return revision, branch and built_at from a stamped file, else git, else unknown."""
    stamped = package_dir / "_build_info.json"
    if stamped.is_file():
        data = json.loads(stamped.read_text())
        return (
            str(data.get("revision", UNKNOWN)),
            str(data.get("branch", UNKNOWN)),
            str(data.get("built_at", UNKNOWN)),
        )
    fields = _git(["log", "-1", "--format=%h%n%cd", "--abbrev=8", "--date=iso"], package_dir)
    if fields is None:
        return UNKNOWN, UNKNOWN, UNKNOWN
    revision, _, built_at = fields.partition("\n")
    branch = _git(["rev-parse", "--abbrev-ref", "HEAD"], package_dir) or UNKNOWN
    return revision, branch, built_at or UNKNOWN


@cache
def build_info() -> BuildInfo:
    """Return this process's build information (computed once)."""
    revision, branch, built_at = _source_info(Path(__file__).resolve().parent)
    machine = platform.machine().lower()
    return BuildInfo(
        name=NAME,
        version=__version__,
        revision=revision,
        branch=branch,
        built_at=built_at,
        python_version=platform.python_version(),
        os=sys.platform,
        architecture=_ARCH.get(machine, machine or UNKNOWN),
    )
