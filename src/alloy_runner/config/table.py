"""Typed access to a TOML table whose every error names the full key."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from alloy_runner.exceptions import ConfigError

T = TypeVar("T")


class Table:
    """Typed access to one TOML table that reports the full key on every error."""

    def __init__(self, data: Mapping[str, Any], where: str, prefix: str = "") -> None:
        self._data = data
        self._where = where
        self._prefix = prefix
        self._seen: set[str] = set()

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

    def integer(self, name: str, default: int, minimum: int = 0) -> int:
        def check(key: str, value: object) -> int:
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise self.error(key, f"an integer >= {minimum}", value)
            return value

        return self.get((name,), default, check)

    def seconds(self, name: str, default: float) -> float:
        def check(key: str, value: object) -> float:
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise self.error(key, "a number of seconds >= 0", value)
            return float(value)

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

    def positive_seconds(self, name: str, default: float) -> float:
        def check(key: str, value: object) -> float:
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise self.error(key, "a number of seconds > 0", value)
            return float(value)

        return self.get((name,), default, check)

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

    def unknown(self) -> list[str]:
        return [
            f"{self._where}: unknown key '{self.key(k)}' is ignored"
            for k in self._data
            if k not in self._seen
        ]
