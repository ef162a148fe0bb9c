"""The `variables:` keyword in its three forms, and the table a job's variables make.

GitLab's precedence, lowest first: predefined, global `variables`, `workflow:rules`
variables, the job's `variables`, its matching rule's `variables`, then the variables
of the run itself (`submit --var`). `expand: false` keeps a value as written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from alloy_runner.build.expand import expand, expand_all
from alloy_runner.pipeline.marked_yaml import LineMap
from alloy_runner.pipeline.report import Reporter

VARIABLE_KEYS = ("value", "description", "options", "expand")  # description/options: UI only


@dataclass
class VarTable:
    """Variables in precedence order (a later `put` wins), and which of them are raw."""

    values: dict[str, str] = field(default_factory=dict)
    raw: set[str] = field(default_factory=set)
    _expanded: dict[str, str] | None = field(default=None, repr=False, compare=False)

    def put(self, other: VarTable | Mapping[str, str]) -> VarTable:
        table = VarTable(dict(self.values), set(self.raw))
        pairs = other.values if isinstance(other, VarTable) else other
        for key, value in pairs.items():
            table.values[key] = value
            table.raw.discard(key)
        if isinstance(other, VarTable):
            table.raw |= other.raw
        return table

    def expanded(self) -> dict[str, str]:
        """Every value with its references expanded, as expressions and keywords see them."""
        if self._expanded is None:  # tables are not changed once built: `put` makes new ones
            self._expanded = expand_all(self.values, frozenset(self.raw))
        return self._expanded

    def expand(self, text: str) -> str:
        """Expand references in a keyword's value (`artifacts:paths`, ...); a reference to a
        variable only the runner knows (CI_PROJECT_DIR) stays for the runner."""
        if "$" not in text and "%" not in text:
            return text
        return expand(text, self.expanded().get, keep_unknown=True)


def read_variables(reporter: Reporter, owner: LineMap, where: str) -> VarTable:
    """Read `owner`'s `variables:` mapping; fail on a value that is not a scalar."""
    table = VarTable()
    if owner.get("variables") is None:
        return table
    mapping = reporter.mapping(owner, "variables", where)
    for key, raw in mapping.items():
        if not isinstance(key, str) or not key:
            reporter.fail(
                mapping.at(key), f"{where}variable {key!r}: a name must be a non-empty string"
            )
        value = raw.get("value", "") if isinstance(raw, LineMap) else raw
        if isinstance(raw, LineMap):
            for extra in raw:
                if extra not in VARIABLE_KEYS:
                    reporter.fail(raw.at(extra), f"{where}variables:{key}: unknown key {extra!r}")
            expands = raw.get("expand", True)
            if not isinstance(expands, bool):
                reporter.fail(raw.at("expand"), f"{where}variables:{key}:expand must be a bool")
            if not expands:
                table.raw.add(key)
        if value is None:
            value = ""
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            what = f"{where}variable {key!r} must be a string, a number or {{value: ...}}"
            reporter.fail(mapping.at(key), what)
        table.values[key] = str(value)
    return table
