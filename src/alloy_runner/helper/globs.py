"""Doublestar globs over a project directory, the way GitLab Runner's helper matches paths.

`**` as a whole component matches any number of directories, `*` and `?` stay
within one, and `[...]` is a class; patterns and results are `/`-separated
paths relative to the project directory. Standard library only.
"""

from __future__ import annotations

import itertools
import os
import posixpath
import re
from collections.abc import Iterator
from pathlib import Path

MAGIC = re.compile(r"[*?\[]")
# `**` as a whole component (any number of directories), `*`, `?`, and a `[...]` class.
GLOB = re.compile(r"(^|/)\*\*(/|$)|\*|\?|\[!?[^]/]+\]")


def _token(match: re.Match[str]) -> str:
    lead, trail = match.group(1, 2)
    text = match.group()
    if trail is not None:  # `**`: `a/**/b` matches a/b, `a/**` matches a itself
        return lead + "(?:.*/)?" if trail else "(?:/.*)?" if lead else ".*"
    if text in ("*", "?"):
        return "[^/]*" if text == "*" else "[^/]"
    body = text[1:-1].replace("\\", "\\\\")
    return f"[^/{body[1:]}]" if body[0] in "!^" else f"[{body}]"


def compile_glob(pattern: str) -> re.Pattern[str]:
    """Compile a doublestar glob over `/`-separated relative paths (use `fullmatch`)."""
    parts, pos = [], 0
    for match in GLOB.finditer(pattern):
        parts += [re.escape(pattern[pos : match.start()]), _token(match)]
        pos = match.end()
    return re.compile("".join([*parts, re.escape(pattern[pos:])]), re.DOTALL)


def normalize(pattern: str, root: Path) -> str | None:
    """Return `pattern` relative to `root` in `/` form ("" for root itself), None if outside."""
    path = os.path.relpath(pattern, root) if os.path.isabs(pattern) else pattern
    path = posixpath.normpath(path.replace(os.sep, "/"))
    if path == ".." or path.startswith("../"):
        return None
    return "" if path == "." else path


def walk(root: Path, rel: str, depth: int | None = None) -> Iterator[str]:
    """Yield the paths below `rel`, sorted, `depth` levels deep, not entering symlinked dirs."""
    if depth == 0:
        return
    try:
        with os.scandir(root / rel) as scan:
            entries = sorted(scan, key=lambda entry: entry.name)
    except (FileNotFoundError, NotADirectoryError):
        return
    for entry in entries:
        child = f"{rel}/{entry.name}" if rel else entry.name
        yield child
        if entry.is_dir(follow_symlinks=False):
            yield from walk(root, child, None if depth is None else depth - 1)


def glob_paths(root: Path, pattern: str) -> Iterator[str]:
    """Yield the paths a normalized pattern matches, walking only below its literal prefix."""
    parts = pattern.split("/") if pattern else []
    literal = 0
    while literal < len(parts) and not MAGIC.search(parts[literal]):
        literal += 1
    base = "/".join(parts[:literal])
    if literal == len(parts):
        if os.path.lexists(root / base):
            yield base
        return
    depth = None if "**" in parts[literal:] else len(parts) - literal
    pattern_regex = compile_glob(pattern)  # `a/**` matches `a` itself too
    candidates = itertools.chain([base], walk(root, base, depth))
    yield from (path for path in candidates if pattern_regex.fullmatch(path))


def inside(path: str, root_real: str) -> bool:
    """Tell whether a resolved path is `root_real` or below it."""
    return os.path.commonpath([path, root_real]) == root_real
