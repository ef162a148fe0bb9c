"""File patterns as `rules:exists` and `rules:changes` read them (Ruby's File.fnmatch with
FNM_PATHNAME, FNM_DOTMATCH and FNM_EXTGLOB): `*`, `?`, `**/`, `[...]` and `{a,b}`."""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

__all__ = ["any_match", "glob_regex"]


@lru_cache(maxsize=1024)
def glob_regex(pattern: str) -> re.Pattern[str]:
    """Compile a glob into a regex matching whole repository-relative paths."""
    pattern = pattern.lstrip("/")
    out, i, depth = [], 0, 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out.append(re.escape(char))
            else:
                body = pattern[i + 1 : end].replace("\\", "\\\\")
                out.append(f"[{'^' + body[1:] if body.startswith('!') else body}]")
                i = end
        elif char == "{":
            out.append("(?:")
            depth += 1
        elif char == "}" and depth:
            out.append(")")
            depth -= 1
        elif char == "," and depth:
            out.append("|")
        else:
            out.append(re.escape(char))
        i += 1
    out.append(")" * depth)
    try:
        return re.compile("".join(out) + r"\Z")
    except re.error:
        return re.compile(re.escape(pattern) + r"\Z")


def any_match(patterns: Iterable[str], paths: Iterable[str]) -> bool:
    """Whether one of `paths` matches one of `patterns`."""
    compiled = [glob_regex(p) for p in patterns]
    return any(regex.match(path) for path in paths for regex in compiled)
