"""Cron expressions as `[[runners.machine.autoscaling]]` Periods use them: does a second match?

GitLab Runner writes periods in cronexpr's 7-field form, seconds first and a
year last: `"* * 9-17 * * mon-fri *"`. Accepted here:

- 7 fields: second minute hour day-of-month month day-of-week year
- 6 fields: second minute hour day-of-month month day-of-week
- 5 fields: minute hour day-of-month month day-of-week (every second of a matching minute)

Each field is `*` (or `?` for the day fields), a number, a name (`jan`..`dec`,
`sun`..`sat`), a range `a-b`, a step `*/n`, `a/n` or `a-b/n`, or a list of
these separated by commas. Day-of-week 7 is Sunday too. When both day fields
are restricted, a day matches either of them, as in cron.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from alloy_runner.exceptions import ConfigError

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    names_from: int = 0


_SECOND = _Field("second", 0, 59)
_MINUTE = _Field("minute", 0, 59)
_HOUR = _Field("hour", 0, 23)
_DOM = _Field("day-of-month", 1, 31)
_MONTH = _Field("month", 1, 12, _MONTHS, 1)
_DOW = _Field("day-of-week", 0, 7, _DAYS, 0)
_YEAR = _Field("year", 1970, 2099)

_TERM = re.compile(r"(?P<range>\*|\?|[0-9a-z]+(?:-[0-9a-z]+)?)(?:/(?P<step>[0-9]+))?")


@dataclass(frozen=True)
class CronExpression:
    """A parsed cron expression; `matches(t)` tells whether the second `t` is in it."""

    text: str
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 is Sunday
    years: frozenset[int] | None  # None: every year
    any_day: bool  # day-of-month is `*` or `?`
    any_weekday: bool

    def matches(self, moment: datetime) -> bool:
        """Tell whether the wall-clock second of `moment` (in its own time zone) matches."""
        if not (
            moment.second in self.seconds
            and moment.minute in self.minutes
            and moment.hour in self.hours
            and moment.month in self.months
            and (self.years is None or moment.year in self.years)
        ):
            return False
        day_ok = moment.day in self.days
        weekday_ok = (moment.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:
            return day_ok and weekday_ok
        return day_ok or weekday_ok


def parse_cron(text: str) -> CronExpression:
    """Parse a 5-, 6- or 7-field expression; raise ConfigError naming the bad field."""
    fields = text.split()
    if len(fields) == 5:
        fields = ["*", *fields, "*"]
    elif len(fields) == 6:
        fields = [*fields, "*"]
    elif len(fields) != 7:
        raise ConfigError(f"cron expression {text!r}: expected 5, 6 or 7 fields, got {len(fields)}")
    second, minute, hour, dom, month, dow, year = fields
    weekdays = _values(text, dow, _DOW)
    if 7 in weekdays:
        weekdays = (weekdays - {7}) | {0}
    expression = CronExpression(
        text=text,
        seconds=_values(text, second, _SECOND),
        minutes=_values(text, minute, _MINUTE),
        hours=_values(text, hour, _HOUR),
        days=_values(text, dom, _DOM),
        months=_values(text, month, _MONTH),
        weekdays=weekdays,
        years=None if year in ("*", "?") else _values(text, year, _YEAR),
        any_day=dom in ("*", "?"),
        any_weekday=dow in ("*", "?"),
    )
    if _never(expression):
        raise ConfigError(f"cron expression {text!r}: no month has such a day; it never matches")
    return expression


_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _never(expression: CronExpression) -> bool:
    """Tell whether the day-of-month and month fields name no date (February 31st)."""
    if not (expression.any_day or expression.any_weekday):
        return False  # both restricted: either matches, and every weekday comes round
    return not any(
        day <= _MONTH_DAYS[month - 1] for month in expression.months for day in expression.days
    )


def _values(text: str, spec: str, field: _Field) -> frozenset[int]:
    out: set[int] = set()
    for term in spec.lower().split(","):
        match = _TERM.fullmatch(term)
        if match is None:
            raise _error(text, field, term)
        step = int(match["step"]) if match["step"] else 1
        if step < 1:
            raise _error(text, field, term)
        span = match["range"]
        if span in ("*", "?"):
            if span == "?" and field not in (_DOM, _DOW):
                raise _error(text, field, term)
            low, high = field.low, field.high
        elif "-" in span:
            first, last = span.split("-")
            low, high = _number(text, first, field), _number(text, last, field)
        else:
            low = _number(text, span, field)
            high = field.high if match["step"] else low
        if low > high:
            raise _error(text, field, term)
        out.update(range(low, high + 1, step))
    return frozenset(out)


def _number(text: str, word: str, field: _Field) -> int:
    if word.isdecimal():
        value = int(word)
    elif word in field.names:
        value = field.names.index(word) + field.names_from
    else:
        raise _error(text, field, word)
    if not field.low <= value <= field.high:
        raise _error(text, field, word)
    return value


def _error(text: str, field: _Field, term: str) -> ConfigError:
    return ConfigError(
        f"cron expression {text!r}: {field.name} field: {term!r} is not a value, range, step "
        f"or list within {field.low}-{field.high}"
    )
