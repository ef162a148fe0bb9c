"""`resource_group`: at most one job of a group runs at a time, across every runner.

`groups/<job id>` names the group of a queued job; `held/<group>` holds the id of the job
that runs in it now (created exclusively, so two runners cannot both take the group).
A holder that has finished, or has left the running state, no longer holds it.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from urllib.parse import quote


def mark(root: Path, job_id: int, group: str) -> None:
    (root / "groups" / str(job_id)).write_text(group)


def group_of(root: Path, job_id: int) -> str | None:
    try:
        return (root / "groups" / str(job_id)).read_text()
    except FileNotFoundError:
        return None


def acquire(root: Path, job_id: int, group: str) -> bool:
    """Take `group` for `job_id`; False while another live job holds it."""
    held = root / "held" / quote(group, safe="")
    for _ in range(2):
        try:
            fd = os.open(held, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = held.read_text().strip() if held.exists() else ""
            if holder == str(job_id):
                return True
            alive = holder.isdecimal() and (
                (root / "running" / f"{holder}.json").exists()
                or (root / "pending" / f"{holder}.json").exists()
            )
            if alive:
                return False
            with contextlib.suppress(FileNotFoundError):
                held.unlink()  # a stale holder: the job ended without releasing it
            continue
        with os.fdopen(fd, "w") as handle:
            handle.write(str(job_id))
        return True
    return False


def release(root: Path, job_id: int) -> None:
    group = group_of(root, job_id)
    if group is None:
        return
    held = root / "held" / quote(group, safe="")
    with contextlib.suppress(FileNotFoundError):
        if held.read_text().strip() == str(job_id):
            held.unlink()
    with contextlib.suppress(FileNotFoundError):
        (root / "groups" / str(job_id)).unlink()
