"""Reading with one voice: the file and line of every error, and each warning once."""

from __future__ import annotations

from typing import Any, NoReturn

from alloy_runner.build.job import ArtifactWhen
from alloy_runner.exceptions import PipelineError
from alloy_runner.pipeline.durations import parse_duration
from alloy_runner.pipeline.marked_yaml import LineMap

WHENS = tuple(when.value for when in ArtifactWhen)  # artifacts:when and cache:when


def kind_of(value: Any) -> str:
    kinds = {dict: "a mapping", list: "a list"}
    return next((kind for t, kind in kinds.items() if isinstance(value, t)), repr(value))


class Reporter:
    """Raise `FILE:LINE: message` for what cannot run; collect one warning per ignored key."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.warnings: list[str] = []
        self._warned: set[str] = set()
        self.included: list[str] = []  # the files `include` read, in order

    def where(self, line: int) -> str:
        """`FILE:LINE` of a line number (lines read from an included file carry their file)."""
        return f"{getattr(line, 'source', self.source)}:{int(line)}"

    def fail(self, line: int, message: str) -> NoReturn:
        raise PipelineError(f"{self.where(line)}: {message}")

    def warn_once(self, topic: str, line: int, message: str) -> None:
        if topic not in self._warned:
            self._warned.add(topic)
            self.warnings.append(f"{self.where(line)}: {message}")

    def ignore(self, line: int, where: str, key: str, note: str = "") -> None:
        """Warn, once per key, that `key` changes nothing here and was ignored."""
        self.warn_once(key, line, f"{where}key {key!r} is not supported and was ignored{note}")

    def strings(self, mapping: LineMap, key: str, where: str) -> tuple[str, ...]:
        value = mapping.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.fail(mapping.at(key), f"{where}{key} must be a list of strings")
        return tuple(value)

    def word(self, mapping: LineMap, key: str, where: str, allowed: tuple[str, ...]) -> str:
        value = mapping.get(key, allowed[0])
        if value not in allowed:
            self.fail(mapping.at(key), f"{where}{key} must be one of {', '.join(allowed)}")
        return str(value)

    def flag(self, mapping: LineMap, key: str, where: str) -> bool:
        value = mapping.get(key, False)
        if not isinstance(value, bool):
            self.fail(mapping.at(key), f"{where}{key} must be true or false")
        return value

    def duration(self, value: Any, line: int, what: str) -> int:
        try:
            return parse_duration(value)
        except PipelineError as exc:
            self.fail(line, f"{what}: {exc}")

    def mapping(self, owner: LineMap, key: str, where: str) -> LineMap:
        value = owner[key]
        if not isinstance(value, LineMap):
            self.fail(owner.at(key), f"{where}{key} must be a mapping, not {kind_of(value)}")
        return value
