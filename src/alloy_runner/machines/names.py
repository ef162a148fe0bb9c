"""Machine names: `runner-<runner>-<MachineName, %s filled>`, and the pattern that finds them."""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable

_UNSAFE = re.compile(r"[^a-z0-9-]+")
UNIQUE = r"[0-9]+-[0-9a-f]{8}"  # what fills %s: unix time and 4 random bytes, as GitLab Runner


def machine_template(runner: str, machine_name: str) -> str:
    """Return the name template of a runner's machines (one `%s`), prefixed so runners never share.

    The prefix is the runner's name made DNS-safe, as GitLab Runner prefixes its short token.
    """
    slug = _UNSAFE.sub("-", runner.lower()).strip("-") or "runner"
    return f"runner-{slug}-{machine_name}"


def name_factory(
    template: str,
    clock: Callable[[], float] = time.time,
    token: Callable[[], str] = lambda: secrets.token_hex(4),
) -> Callable[[], str]:
    """Return a function that makes a new, unique machine name from `template`."""
    return lambda: template.replace("%s", f"{int(clock())}-{token()}", 1)


def name_filter(template: str) -> re.Pattern[str]:
    """Return the pattern that the names made from `template` match, and no other names."""
    before, _, after = template.partition("%s")
    return re.compile(re.escape(before) + UNIQUE + re.escape(after))
