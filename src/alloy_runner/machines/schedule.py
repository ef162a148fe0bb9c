"""Which IdleCount and IdleTime apply now: the base values, or the last matching period's."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo
from zoneinfo import ZoneInfo

from alloy_runner.config.model import MachineConfig
from alloy_runner.machines.cron import CronExpression, parse_cron


@dataclass(frozen=True)
class IdlePolicy:
    """How many machines to keep idle, and how long an extra idle machine may live (seconds)."""

    idle_count: int
    idle_time: float


@dataclass(frozen=True)
class _Period:
    expressions: tuple[CronExpression, ...]
    zone: tzinfo | None  # None: the host's local time
    policy: IdlePolicy

    def matches(self, moment: datetime) -> bool:
        local = moment.astimezone(self.zone)
        return any(e.matches(local) for e in self.expressions)


class IdleSchedule:
    """The IdlePolicy of a `[runners.machine]` at a moment, as GitLab Runner picks it."""

    def __init__(self, config: MachineConfig) -> None:
        self.base = IdlePolicy(config.idle_count, config.idle_time)
        self._periods = tuple(
            _Period(
                tuple(parse_cron(p) for p in period.periods),
                ZoneInfo(period.timezone) if period.timezone else None,
                IdlePolicy(period.idle_count, period.idle_time),
            )
            for period in config.autoscaling
        )

    def at(self, moment: datetime) -> IdlePolicy:
        """Return the policy in force at `moment` (aware): the last matching period's, or base."""
        policy = self.base
        for period in self._periods:
            if period.matches(moment):
                policy = period.policy
        return policy
