"""Variable references in values, as GitLab expands them: `$VAR`, `${VAR}`, `%VAR%`, `$$`.

`$$` is a literal `$`. A reference to an unknown variable becomes empty, as in GitLab.
Values that themselves hold references are expanded too (recursively, as GitLab Runner
does), and a value that refers back to itself stops expanding instead of looping.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

__all__ = ["expand", "expand_all"]

_REFERENCE = re.compile(
    r"\$\$|\$([A-Za-z_][A-Za-z0-9_]*)|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|%([A-Za-z_][A-Za-z0-9_]*)%"
)
MAX_DEPTH = 10  # GitLab Runner's own limit on nested references


def expand(text: str, lookup: Callable[[str], str | None], *, keep_unknown: bool = False) -> str:
    """Return `text` with every reference replaced by `lookup(name)` (once, not recursively)."""
    if "$" not in text and "%" not in text:
        return text

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1) or match.group(2) or match.group(3)
        value = lookup(name)
        if value is None:
            return match.group(0) if keep_unknown or match.group(3) else ""
        return value

    return _REFERENCE.sub(one, text)


def expand_all(
    values: Mapping[str, str], raw: frozenset[str] = frozenset(), *, keep_unknown: bool = False
) -> dict[str, str]:
    """Expand every value of `values` against the others, recursively; `raw` keys stay as is.

    A `%NAME%` whose NAME is unknown stays literal (it is often not a reference at all);
    with `keep_unknown`, so does every reference to an unknown name (a variable the
    runner sets later, such as CI_PROJECT_DIR).
    """
    done = {  # values without references (most of them) are what they are
        name: value
        for name, value in values.items()
        if name in raw or ("$" not in value and "%" not in value)
    }

    def resolve(name: str, depth: int, chain: frozenset[str]) -> str | None:
        if name not in values:
            return None
        if name in done:
            return done[name]
        value = values[name]
        if name in raw:
            return value
        if depth >= MAX_DEPTH or name in chain:
            return _unescaped(value)
        inner = chain | {name}
        result = expand(
            value, lambda other: resolve(other, depth + 1, inner), keep_unknown=keep_unknown
        )
        if not chain:
            done[name] = result
        return result

    for name in values:
        if name not in done:
            resolve(name, 0, frozenset())
    return {name: done.get(name, "") for name in values}


def _unescaped(value: str) -> str:
    return value.replace("$$", "$")
