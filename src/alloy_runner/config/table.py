"""Typed access to a TOML table whose every error names the full key."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from alloy_runner.exceptions import ConfigError

T = TypeVar("T")

MAX_SECONDS = 7 * 24 * 3600.0  # a week: no timeout or interval of the runner is longer


def _finite_within(value: float, minimum: float, maximum: float) -> bool:
    return math.isfinite(value) and minimum <= value <= maximum


class Table:
    """Typed access to one TOML table that reports the full key on every error."""

    def __init__(self, data: Mapping[str, Any], where: str, prefix: str = "") -> None:
        self._data = data
        self._where = where
        self._prefix = prefix
        self._seen: set[str] = set()

    @property
    def where(self) -> str:
        """The file (or text) this table comes from."""
        return self._where

    def key(self, name: str) -> str:
        return f"{self._prefix}{name}"

    def error(self, name: str, expected: str, value: object) -> ConfigError:
        return ConfigError(
            f"{self._where}: key '{self.key(name)}': expected {expected}, got {value!r}"
        )

    def invalid(self, name: str, message: str) -> ConfigError:
        return ConfigError(f"{self._where}: key '{self.key(name)}': {message}")

    def has(self, name: str) -> bool:
        return name in self._data

    def get(self, names: tuple[str, ...], default: T, check: Callable[[str, object], T]) -> T:
        present = [n for n in names if n in self._data]
        self._seen.update(names)
        if len(present) > 1:
            raise ConfigError(
                f"{self._where}: keys {' and '.join(map(self.key, present))} are aliases; "
                "give only one"
            )
        if not present:
            return default
        return check(present[0], self._data[present[0]])

    def integer(self, name: str, default: int, minimum: int = 0, *, maximum: int) -> int:
        """Return an integer key within [minimum, maximum]: every count has a sane bound."""

        def check(key: str, value: object) -> int:
            ok = isinstance(value, int) and not isinstance(value, bool)
            if not ok or not minimum <= value <= maximum:  # type: ignore[operator]
                raise self.error(key, f"an integer from {minimum} to {maximum}", value)
            return value  # type: ignore[return-value]

        return self.get((name,), default, check)

    def seconds(self, name: str, default: float, *, maximum: float = MAX_SECONDS) -> float:
        """Return a finite number of seconds within [0, maximum] (inf and nan are refused)."""
        return self._seconds(name, default, 0.0, maximum, ">= 0")

    def _seconds(
        self, name: str, default: float, minimum: float, maximum: float, low: str
    ) -> float:
        def check(key: str, value: object) -> float:
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if not number or not _finite_within(float(value), minimum, maximum):  # type: ignore[arg-type]
                raise self.error(key, f"a number of seconds {low} and <= {maximum:g}", value)
            return float(value)  # type: ignore[arg-type]

        return self.get((name,), default, check)

    def string(self, *names: str, default: str, choices: tuple[str, ...] = ()) -> str:
        def check(key: str, value: object) -> str:
            if not isinstance(value, str):
                raise self.error(key, "a string", value)
            if choices and value not in choices:
                raise self.error(key, "one of " + ", ".join(choices), value)
            return value

        return self.get(names, default, check)

    def strings(self, name: str) -> tuple[str, ...]:
        def check(key: str, value: object) -> tuple[str, ...]:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise self.error(key, "a list of strings", value)
            return tuple(value)

        return self.get((name,), (), check)

    def boolean(self, name: str, default: bool) -> bool:
        def check(key: str, value: object) -> bool:
            if not isinstance(value, bool):
                raise self.error(key, "true or false", value)
            return value

        return self.get((name,), default, check)

    def positive_seconds(self, name: str, default: float, *, maximum: float = MAX_SECONDS) -> float:
        """Return a finite number of seconds within (0, maximum]."""
        return self._seconds(name, default, math.ulp(0.0), maximum, "> 0")

    def string_table(self, name: str) -> tuple[tuple[str, str], ...]:
        def check(key: str, value: object) -> tuple[tuple[str, str], ...]:
            if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
                raise self.error(key, "a table of strings", value)
            return tuple(value.items())

        return self.get((name,), (), check)

    def table(self, name: str) -> Table:
        value = self._data.get(name, {})
        self._seen.add(name)
        if not isinstance(value, dict):
            raise self.error(name, f"a table ([{self.key(name)}])", value)
        return Table(value, self._where, f"{self.key(name)}.")

    def tables(self, name: str) -> list[Table]:
        value = self._data.get(name, [])
        self._seen.add(name)
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise self.error(name, f"an array of tables ([[{self.key(name)}]])", value)
        return [Table(v, self._where, f"{self.key(name)}[{i}].") for i, v in enumerate(value)]

    def unread(self) -> list[str]:
        """Return the keys of the table not read yet."""
        return [k for k in self._data if k not in self._seen]

    def consume(self, name: str) -> None:
        """Mark `name` as read, so that `unknown` does not name it."""
        self._seen.add(name)

    def unknown(self) -> list[str]:
        return [
            f"{self._where}: unknown key '{self.key(k)}' is ignored"
            for k in self._data
            if k not in self._seen
        ]
