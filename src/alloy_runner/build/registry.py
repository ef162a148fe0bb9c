"""The live builds of a process, read by telemetry and /debug/jobs/list at any moment."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alloy_runner.build.build import Build


class BuildRegistry:
    """Hold every build from creation to its end; safe to read from other threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._builds: dict[int, Build] = {}
        self._slots: dict[tuple[str, str], set[int]] = {}

    def add(self, build: Build) -> None:
        with self._lock:
            self._builds[id(build)] = build

    def remove(self, build: Build) -> None:
        with self._lock:
            self._builds.pop(id(build), None)

    def snapshot(self) -> tuple[Build, ...]:
        """Return the builds alive now."""
        with self._lock:
            return tuple(self._builds.values())

    def count(self, runner: str | None = None) -> int:
        with self._lock:
            return sum(1 for b in self._builds.values() if runner is None or b.runner == runner)

    def claim_slot(self, runner: str, project: str) -> int:
        """Return the lowest directory slot of `project` no running build of `runner` uses."""
        with self._lock:
            used = self._slots.setdefault((runner, project), set())
            slot = next(i for i in range(len(used) + 1) if i not in used)
            used.add(slot)
            return slot

    def release_slot(self, runner: str, project: str, slot: int) -> None:
        with self._lock:
            self._slots.get((runner, project), set()).discard(slot)


def format_duration(seconds: float) -> str:
    """Write a duration the way Go does (`1m2.5s`), as GitLab Runner's job list shows it."""
    minutes, rest = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    text = f"{rest:.3f}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{hours}h{minutes}m{text}"
    if minutes:
        return f"{minutes}m{text}"
    return text


def jobs_list(builds: tuple[Build, ...]) -> str:
    """Return `/debug/jobs/list`: one running job a line, without tokens or variable values."""
    return "".join(
        f"id={b.job.id} url={b.source.job_url(b.job)} runner={b.runner} state={b.state.value} "
        f"stage={b.stage.value} executor_stage={b.executor_stage.value} "
        f"duration={format_duration(b.duration)}\n"
        for b in sorted(builds, key=lambda b: b.job.id)
    )
