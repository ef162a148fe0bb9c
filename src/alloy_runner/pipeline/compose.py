"""One configuration from several files: `include: local` and `!reference` tags.

As GitLab does, included files are read first, in order (a file's own includes before
it), and deep-merged, so that the including file overrides what it includes. Kinds of
include that need a GitLab server (template, project, remote, component) are refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alloy_runner.pipeline.marked_yaml import Line, LineMap, Reference, load_yaml, merge
from alloy_runner.pipeline.repo import Repo
from alloy_runner.pipeline.report import Reporter
from alloy_runner.pipeline.rules import Selector
from alloy_runner.pipeline.variables import VarTable

MAX_INCLUDES = 150  # GitLab's default limit of included files per pipeline
REMOTE_KINDS = ("template", "project", "remote", "component", "file")
INCLUDE_KEYS = ("local", "rules", "inputs", *REMOTE_KINDS, "ref", "cache", "integrity")
MAX_REFERENCE_DEPTH = 10


def compose(r: Reporter, text: str, repo: Repo, table: VarTable) -> LineMap:
    """Read the main file's `text`, its includes, and resolve every `!reference`."""
    top = _load(r, text, r.source)
    if not top:
        r.fail(1, "no jobs: the file is empty")
    merged = _Includer(r, repo, table).expand(top, 0)
    resolved: LineMap = _resolve_references(r, merged, merged, 0)
    return resolved


def _load(r: Reporter, text: str, source: str) -> LineMap:
    data = load_yaml(text, source)
    if data is None:
        data = LineMap(1)
    if not isinstance(data, LineMap):
        r.fail(Line(1, source), "expected a mapping of job names to jobs at the top level")
    return data


class _Includer:
    def __init__(self, r: Reporter, repo: Repo, table: VarTable) -> None:
        self.r, self.repo, self.table = r, repo, table
        self.seen: set[Path] = set()
        self.selector = Selector(r, repo)

    def expand(self, top: LineMap, depth: int) -> LineMap:
        """Return `top` with the files it includes merged under it."""
        if "include" not in top:
            return top
        value, line = top["include"], top.at("include")
        entries = value if isinstance(value, list) else [value]
        merged = LineMap(top.line)
        for entry in entries:
            for path in self._paths(entry, line):
                if path in self.seen:
                    continue  # GitLab reads a file included twice once
                self.seen.add(path)
                if len(self.seen) > MAX_INCLUDES:
                    self.r.fail(line, f"include: more than {MAX_INCLUDES} files")
                merged = merge(merged, self._read(path, line, depth))
        own = LineMap(top.line)
        for key, item in top.items():
            if key != "include":
                own.put(key, item, top.at(key))
        return merge(merged, own)

    def _read(self, path: Path, line: int, depth: int) -> LineMap:
        shown = path.relative_to(self.repo.root.resolve()).as_posix()
        self.r.included.append(shown)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            self.r.fail(line, f"include: cannot read {shown} ({exc.__class__.__name__})")
        included = _load(self.r, text, shown)
        return self.expand(included, depth + 1)

    def _paths(self, entry: Any, line: int) -> list[Path]:
        if isinstance(entry, str):
            kind = "remote" if entry.startswith(("http://", "https://")) else "local"
            return self._local(entry, line) if kind == "local" else self._refuse(kind, entry, line)
        if not isinstance(entry, LineMap):
            self.r.fail(line, "include: each include must be a path or a mapping")
        line = entry.line
        for key in entry:
            if key not in INCLUDE_KEYS:
                self.r.fail(entry.at(key), f"include: unknown key {key!r}")
        kinds = [k for k in ("local", *REMOTE_KINDS) if k in entry]
        if len(kinds) != 1 or (kinds == ["file"] and "project" in entry):
            kinds = [k for k in kinds if k != "file"]
        if len(kinds) != 1:
            self.r.fail(
                line, "include: name exactly one of local, project, remote, template, component"
            )
        kind = kinds[0]
        if kind != "local":
            return self._refuse(kind, entry[kind], entry.at(kind))
        if "inputs" in entry:
            self.r.fail(entry.at("inputs"), "include:inputs (spec:inputs) is not supported here")
        if "rules" in entry:
            decision = self.selector.rules(
                entry["rules"], entry.at("rules"), "include:", self.table
            )
            if decision is None:
                return []
        target = entry["local"]
        if not isinstance(target, str):
            self.r.fail(entry.at("local"), "include:local must be a file path")
        return self._local(target, entry.at("local"))

    def _refuse(self, kind: str, what: Any, line: int) -> list[Path]:
        self.r.fail(
            line,
            f"include: {kind} {what!r} cannot be fetched here (only local files can be included)",
        )

    def _local(self, target: str, line: int) -> list[Path]:
        pattern = self.table.expand(target).lstrip("/")
        root = self.repo.root.resolve()
        if any(c in pattern for c in "*?["):
            found = sorted(
                p for p in root.glob(pattern) if p.is_file() and p.suffix in (".yml", ".yaml")
            )
            return [p.resolve() for p in found]
        path = (root / pattern).resolve()
        if not path.is_relative_to(root):
            self.r.fail(line, f"include: local {target!r} is outside the repository")
        if not path.is_file():
            self.r.fail(line, f"include: local file {target!r} does not exist")
        if path.suffix not in (".yml", ".yaml"):
            self.r.fail(line, f"include: local file {target!r} must end in .yml or .yaml")
        return [path]


def _resolve_references(r: Reporter, value: Any, top: LineMap, depth: int) -> Any:
    if isinstance(value, Reference):
        if depth >= MAX_REFERENCE_DEPTH:
            r.fail(value.line, f"!reference nests more than {MAX_REFERENCE_DEPTH} levels")
        return _resolve_references(r, _lookup(r, value, top), top, depth + 1)
    if isinstance(value, LineMap):
        out = LineMap(value.line)
        for key, item in value.items():
            out.put(key, _resolve_references(r, item, top, depth), value.at(key))
        return out
    if isinstance(value, list):
        return [_resolve_references(r, item, top, depth) for item in value]
    return value


def _lookup(r: Reporter, ref: Reference, top: LineMap) -> Any:
    shown = f"!reference [{', '.join(map(str, ref.path))}]"
    if not ref.path or not all(isinstance(p, str) for p in ref.path):
        r.fail(ref.line, f"{shown}: each part must be a name")
    node: Any = top
    for part in ref.path:
        if not isinstance(node, dict) or part not in node:
            r.fail(ref.line, f"{shown}: {part!r} not found")
        node = node[part]
    return node
