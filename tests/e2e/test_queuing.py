"""[[runners.monitoring.job_queuing_durations]]: jobs that waited too long are counted."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from alloy_runner.config.load import parse_config
from alloy_runner.config.model import QueuingDuration
from alloy_runner.exceptions import ConfigError
from alloy_runner.telemetry.metrics.queuing import queuing_exceeded
from tests.support.exposition import metric_value, parse_exposition
from tests.support.jobs import JobsRig, pipeline

MONITORING = """
[[runners.monitoring.job_queuing_durations]]
periods = ["* * * * * * *"]
threshold = "1s"
"""


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[JobsRig]:
    the_rig = JobsRig(tmp_path / "rig")
    try:
        yield the_rig
    finally:
        the_rig.stop_all()


def test_a_job_that_waited_past_the_threshold_is_counted_under_both_names(rig: JobsRig) -> None:
    """With one slot, the second of two jobs waits for the first (1.5 s): it alone counts."""
    config = 'metric_names = "both"\n' + rig.config(concurrent=1) + MONITORING
    runner = rig.runner(config)
    jobs: dict[str, Any] = {"first": {"script": ["sleep 1.5"]}, "second": {"script": ["true"]}}
    rig.wait_results(rig.submit(rig.project("queue", pipeline(**jobs))).ids)
    families = parse_exposition(runner.scrape()[1])
    name = {"runner": rig.runner_name}
    assert (
        metric_value(families, "ci_runner_acceptable_job_queuing_duration_exceeded_total", name)
        == 1
    )
    theirs = {"runner_name": rig.runner_name}
    sample = "gitlab_runner_acceptable_job_queuing_duration_exceeded_total"
    assert metric_value(families, sample, theirs) == 1


NOON = datetime(2026, 11, 30, 12, 0, 0).timestamp()  # a Monday


@pytest.mark.parametrize(
    ("entries", "queued", "project", "expected"),
    [
        ((), 999.0, "", False),  # nothing configured
        ((QueuingDuration(("* * * * * * *",), threshold=60),), 61.0, "", True),
        ((QueuingDuration(("* * * * * * *",), threshold=60),), 60.0, "", False),
        ((QueuingDuration(("* * * * * * *",), threshold=0),), 999.0, "", False),
        # Only on Sundays: not now.
        ((QueuingDuration(("* * * * * sun *",), threshold=1),), 9.0, "", False),
        # The last matching entry wins.
        (
            (
                QueuingDuration(("* * * * * * *",), threshold=1),
                QueuingDuration(("* * 12 * * * *",), threshold=100),
            ),
            9.0,
            "",
            False,
        ),
        (
            (QueuingDuration(("* * * * * * *",), threshold=1, jobs_running_for_project="^[0-3]$"),),
            9.0,
            "2",
            True,
        ),
        (
            (QueuingDuration(("* * * * * * *",), threshold=1, jobs_running_for_project="^[0-3]$"),),
            9.0,
            "7",
            False,
        ),
    ],
)
def test_which_waits_exceed(
    entries: tuple[QueuingDuration, ...], queued: float, project: str, expected: bool
) -> None:
    assert queuing_exceeded(entries, queued, project, NOON) is expected


def test_the_configuration_reads_go_durations_and_refuses_bad_entries() -> None:
    runner = '[[runners]]\nname = "a"\n'
    (entry,) = (
        parse_config(runner + MONITORING.replace('"1s"', '"1h30m"'), "c")
        .runners[0]
        .job_queuing_durations
    )
    assert entry.threshold == 5400
    bad = (
        MONITORING.replace('"1s"', '"soon"'),
        MONITORING.replace('["* * * * * * *"]', '["* * *"]'),
        MONITORING + 'jobs_running_for_project = "["\n',
    )
    for text in bad:
        with pytest.raises(ConfigError):
            parse_config(runner + text, "c")
