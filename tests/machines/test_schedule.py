"""Autoscaling periods: cron expressions in GitLab's forms, and which period's values apply."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from alloy_runner.config.model import AutoscalingConfig, MachineConfig
from alloy_runner.exceptions import ConfigError
from alloy_runner.machines.cron import parse_cron
from alloy_runner.machines.schedule import IdlePolicy, IdleSchedule

# A Wednesday.
NOON = datetime(2024, 5, 15, 12, 30, 15, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "moment", "expected"),
    [
        ("* * 9-17 * * mon-fri *", NOON, True),
        ("* * 9-17 * * sat,sun *", NOON, False),
        ("* * * * * * 2024", NOON, True),
        ("* * * * * * 2025", NOON, False),
        ("15 30 12 * * *", NOON, True),
        ("*/2 * * * * *", NOON, False),
        ("30 12 * * *", NOON, True),
        ("30 12 * * *", NOON.replace(second=59), True),
        ("* * * 15 may ?", NOON, True),
        ("* * * 1 * wed", NOON, True),  # both day fields restricted: either matches
        ("* * * 1 * 0", NOON, False),
        ("* * * * * 7", NOON.replace(day=19), True),  # 7 is Sunday too
        ("0-59/15 * * * * *", NOON, True),
        ("10/5 * * * * *", NOON, True),
    ],
)
def test_cron_matches_a_second(expression: str, moment: datetime, expected: bool) -> None:
    """5-, 6- and 7-field expressions match the seconds that cron and cronexpr would."""
    assert parse_cron(expression).matches(moment) is expected


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [
        ("* * *", "expected 5, 6 or 7 fields"),
        ("* * 24 * * * *", "hour field: '24'"),
        ("* * * * foo * *", "month field: 'foo'"),
        ("? * * * * * *", "second field: '?'"),
        ("* * 5-3 * * * *", "hour field: '5-3'"),
        ("*/0 * * * * * *", "second field"),
    ],
)
def test_cron_errors_name_the_field(expression: str, fragment: str) -> None:
    """A bad expression is a ConfigError that names the field and the bad term."""
    with pytest.raises(ConfigError) as caught:
        parse_cron(expression)
    assert fragment in str(caught.value)


def test_the_last_matching_period_wins() -> None:
    """Outside every period the base values apply; inside, the last matching period's."""
    config = MachineConfig(
        idle_count=1,
        idle_time=60,
        autoscaling=(
            AutoscalingConfig(("* * 9-17 * * mon-fri *",), "UTC", idle_count=10, idle_time=600),
            AutoscalingConfig(("* * 12 * * * *",), "UTC", idle_count=20, idle_time=30),
            AutoscalingConfig(("* * * * * sat,sun *",), "UTC", idle_count=0, idle_time=0),
        ),
    )
    schedule = IdleSchedule(config)
    assert schedule.at(NOON) == IdlePolicy(20, 30)
    assert schedule.at(NOON.replace(hour=10)) == IdlePolicy(10, 600)
    assert schedule.at(NOON.replace(hour=20)) == IdlePolicy(1, 60)
    assert schedule.at(NOON.replace(day=18)) == IdlePolicy(0, 0)


def test_a_period_is_read_in_its_timezone() -> None:
    """A period's Timezone decides the wall clock its expressions are matched against."""
    config = MachineConfig(
        idle_count=0,
        autoscaling=(AutoscalingConfig(("* * 14 * * * *",), "Europe/Berlin", idle_count=3),),
    )
    schedule = IdleSchedule(config)
    # 12:30 UTC is 14:30 in Berlin in May (CEST).
    assert schedule.at(NOON) == IdlePolicy(3, 0.0)
    assert schedule.at(NOON.astimezone(ZoneInfo("America/New_York"))) == IdlePolicy(3, 0.0)
    assert schedule.at(NOON.replace(hour=14)) == IdlePolicy(0, 0.0)
