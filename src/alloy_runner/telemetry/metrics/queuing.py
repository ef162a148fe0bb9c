"""Did a job wait longer than `[[runners.monitoring.job_queuing_durations]]` accepts?"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, tzinfo

from alloy_runner.config.model import QueuingDuration


def active(durations: Sequence[QueuingDuration], now: float) -> QueuingDuration | None:
    """Return the entry whose periods match the second `now`; the last matching one wins."""
    if not durations:
        return None
    # The cron parser loads only for a runner with queuing durations (issue 11: idle memory).
    from alloy_runner.machines.cron import parse_cron

    found = None
    for entry in durations:
        zone = _zone(entry.timezone) if entry.timezone else None
        moment = datetime.fromtimestamp(now, zone) if zone else datetime.fromtimestamp(now)
        if any(parse_cron(period).matches(moment) for period in entry.periods):
            found = entry
    return found


def _zone(name: str) -> tzinfo:
    # zoneinfo (and the sysconfig it reads its search path from) loads only for a runner
    # that names a timezone: ~0.3 MB resident otherwise (benchmarks/RESULTS.md).
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)


def queuing_exceeded(
    durations: Sequence[QueuingDuration], queued: float, project_jobs_running: str, now: float
) -> bool:
    """Tell whether a job that waited `queued` seconds exceeds the active threshold.

    As GitLab Runner judges it: no active entry, or a threshold of 0, watches
    nothing; a `jobs_running_for_project` expression that does not match what
    the coordinator said of the project's running jobs makes the wait acceptable.
    """
    entry = active(durations, now)
    if entry is None or entry.threshold <= 0 or queued <= entry.threshold:
        return False
    pattern = entry.jobs_running_for_project
    return not pattern or re.search(pattern, project_jobs_running) is not None
