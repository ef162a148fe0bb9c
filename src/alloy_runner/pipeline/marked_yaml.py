"""YAML whose mappings remember their lines, so that a message can point at the key."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml

from alloy_runner.exceptions import PipelineError


class Line(int):
    """A line number that remembers the file it is in (files come from `include`)."""

    source: str

    def __new__(cls, value: int, source: str) -> Line:
        line = super().__new__(cls, value)
        line.source = source
        return line


@dataclass(frozen=True)
class Reference:
    """A `!reference [job, key, ...]` tag, resolved once every file is read."""

    path: tuple[Any, ...]
    line: int


class LineMap(dict[Any, Any]):
    """A YAML mapping that knows its own line and the line of each of its keys (from 1)."""

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line
        self.lines: dict[Any, int] = {}

    def at(self, key: Any) -> int:
        """Return the line of `key`, or the mapping's own line when it has no such key."""
        return self.lines.get(key, self.line)

    def put(self, key: Any, value: Any, line: int) -> None:
        """Set `key` to `value`, written at `line`."""
        self[key] = value
        self.lines[key] = line


_Base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's parser when there is one


class _Loader(_Base):  # type: ignore[misc]
    """PyYAML's safe loader, whose mappings are LineMaps (anchors and merge keys still work)."""

    source = ""


def _construct_map(loader: _Loader, node: yaml.MappingNode) -> Iterator[LineMap]:
    data = LineMap(Line(node.start_mark.line + 1, loader.source))
    yield data  # before the content, so that aliases inside it can refer to it
    data.update(loader.construct_mapping(node))
    for key_node, _ in node.value:  # merge keys (`<<`) are flattened in by now; last one wins
        line = Line(key_node.start_mark.line + 1, loader.source)
        with contextlib.suppress(TypeError):  # an unhashable key: the caller refuses it
            data.lines[loader.construct_object(key_node)] = line


def _construct_reference(loader: _Loader, node: yaml.Node) -> Reference:
    line = Line(node.start_mark.line + 1, loader.source)
    if not isinstance(node, yaml.SequenceNode):
        raise yaml.constructor.ConstructorError(
            None, None, "!reference takes a list such as [.job, script]", node.start_mark
        )
    path = tuple(loader.construct_object(item, deep=True) for item in node.value)
    return Reference(path, line)


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_Loader.add_constructor("!reference", _construct_reference)


def load_yaml(text: str, source: str) -> Any:
    """Load one YAML document safely; a syntax error raises PipelineError `SOURCE:LINE:COL: ...`."""
    loader = None
    try:
        loader = _Loader(text)  # checks that every character is one YAML allows
        loader.source = source
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{mark.line + 1}:{mark.column + 1}" if mark else "1:1"
        why = exc.problem or exc.context or "not valid YAML"
        if exc.problem and exc.context:
            why = f"{exc.problem} ({exc.context})"
        raise PipelineError(f"{source}:{where}: {' '.join(why.split())}") from None
    except yaml.reader.ReaderError as exc:  # a character that YAML does not allow
        line = text.count("\n", 0, exc.position) + 1
        what = f"#x{exc.character:04x}" if isinstance(exc.character, int) else repr(exc.character)
        raise PipelineError(f"{source}:{line}: character {what}: {exc.reason}") from None
    finally:
        if loader is not None:
            loader.dispose()


def merge(base: LineMap, over: LineMap) -> LineMap:
    """Deep-merge as GitLab's `extends` does: mappings merge, every other value replaces."""
    out = LineMap(over.line)
    out.update(base)
    out.lines.update(base.lines)
    for key, value in over.items():
        old = out.get(key)
        if isinstance(old, LineMap) and isinstance(value, LineMap):
            out.put(key, merge(old, value), over.at(key))
        else:
            out.put(key, value, over.at(key))
    return out
