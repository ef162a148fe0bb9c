"""The OTEL_* variables that hold lists of pairs or numbers, read in the runner's own words.

The SDK parses `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_EXPORTER_OTLP_*HEADERS` and
`OTEL_BSP_*` itself, and says what it cannot read with a line (or a traceback)
of its own, once per exporter. The runner reads them first, says once in its
log which part it ignores, hands the SDK what it read, and hides the variables
from the SDK so that nothing is said twice.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, MutableMapping
from urllib.parse import unquote

RESOURCE_ATTRIBUTES = "OTEL_RESOURCE_ATTRIBUTES"
HEADER_VARIABLES = (
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
    "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
)
BSP_DEFAULTS = {"OTEL_BSP_SCHEDULE_DELAY": 5000, "OTEL_BSP_EXPORT_TIMEOUT": 30000}  # ms

_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def parse_pairs(
    variable: str, text: str, *, header_names: bool = False
) -> tuple[dict[str, str], str | None]:
    """Read `key=value,...` (values URL-encoded, as the specification says); return the pairs
    and one warning naming what was ignored, or None."""
    pairs: dict[str, str] = {}
    bad: list[str] = []
    for item in text.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        key = unquote(key.strip())
        name_ok = bool(key) and (not header_names or _HEADER_NAME.fullmatch(key) is not None)
        if not sep or not name_ok:
            bad.append(item.strip())
            continue
        pairs[key.lower() if header_names else key] = unquote(value.strip())
    if not bad:
        return pairs, None
    shown = ", ".join(repr(b[:40]) for b in bad[:3]) + (" ..." if len(bad) > 3 else "")
    return pairs, f"{variable}: ignoring {shown}: not key=value"


def bsp_milliseconds(env: Mapping[str, str], variable: str) -> tuple[int, str | None]:
    """Return a batch span processor duration in ms (its default when unset or unreadable)."""
    default = BSP_DEFAULTS[variable]
    text = env.get(variable, "").strip()
    if not text:
        return default, None
    if text.isdecimal():
        return int(text), None
    return default, f"{variable}: {text!r} is no whole number of milliseconds; using {default}"


def hide_from_sdk(env: MutableMapping[str, str]) -> None:
    """Remove the variables the runner has read, so the SDK does not parse them again."""
    for variable in (RESOURCE_ATTRIBUTES, *HEADER_VARIABLES, *BSP_DEFAULTS):
        env.pop(variable, None)
