"""GitLab's duration grammar (`timeout`, `expire_in`): "3600", "1h 30m", "2 hours 5 min"."""

from __future__ import annotations

import re

from alloy_runner.exceptions import PipelineError

_UNITS = {
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 60),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), 3600),
    **dict.fromkeys(("d", "day", "days"), 86400),
    **dict.fromkeys(("w", "wk", "wks", "week", "weeks"), 7 * 86400),
    **dict.fromkeys(("mo", "mos", "month", "months"), 30 * 86400),
    **dict.fromkeys(("y", "yr", "yrs", "year", "years"), 365 * 86400),
}
_TERM = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*")
_CLOCK = re.compile(r"(\d+):([0-5]\d)(?::([0-5]\d))?")


def parse_duration(text: str | int) -> int:
    """Return the seconds of a GitLab duration: 3600, "3600", "1h 30m", "90 minutes", "1:30:00".

    A bare number is seconds, "m" minutes, "mo" months of 30 days, "y" years of 365 days;
    terms may be joined by spaces, commas or "and" (as GitLab's ChronicDuration reads them).
    Raise PipelineError on anything else, negative numbers included.
    """
    if isinstance(text, bool) or not isinstance(text, int | str):
        raise PipelineError(f"invalid duration {text!r}: expected seconds or text like '1h 30m'")
    if isinstance(text, int):
        if text < 0:
            raise PipelineError(f"invalid duration {text!r}: it is negative")
        return text
    words = re.sub(r"\band\b|,", " ", text.strip().lower()).strip()
    clock = _CLOCK.fullmatch(words)
    if clock:  # h:mm:ss, or m:ss
        parts = [int(p) for p in clock.groups() if p is not None]
        return sum(p * 60**i for i, p in enumerate(reversed(parts)))
    total, pos = 0.0, 0
    while pos < len(words):
        term = _TERM.match(words, pos)
        if term is None or term.group(2) not in (*_UNITS, ""):
            raise PipelineError(f"invalid duration {text!r}: expected text like '1h 30m' or '90s'")
        total += float(term.group(1)) * _UNITS.get(term.group(2), 1)
        pos = term.end()
    if pos == 0:
        raise PipelineError(f"invalid duration {text!r}: it is empty")
    return round(total)
