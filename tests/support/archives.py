"""Small helpers of the artifact/cache archive tests: build a tree, list a zip."""

from __future__ import annotations

import zipfile
from pathlib import Path


def make_tree(root: Path, files: dict[str, str]) -> None:
    """Create `files` (relative path -> content) under `root`."""
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)


def names(path: Path) -> set[str]:
    """Return the entry names of a zip archive."""
    with zipfile.ZipFile(path) as zf:
        return set(zf.namelist())
