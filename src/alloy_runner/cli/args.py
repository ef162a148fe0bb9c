"""The command line's parser: the standard library's argparse, made to fail in one line.

argparse rather than click (which parsed the flags before): `alloy-runner run` lives
for weeks, and click's modules stayed resident in it for nothing once the flags were
read (about 1 MB of an idle runner; argparse costs 0.3 MB: issue 11). What
argparse lacks and click had is here, small: an error raises `UsageError` (one line,
exit 2) instead of printing usage; options may take their value from an environment
variable (GitLab Runner's `register` reads CI_SERVER_URL, RUNNER_LIMIT, ...); and the
value types click checked (a file that must not be a directory, a bounded integer, a
boolean written as GitLab Runner accepts it).
"""

from __future__ import annotations

import argparse
import os
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from alloy_runner.exceptions import UsageError

PROG = "alloy-runner"

_TRUE = frozenset({"1", "true", "t", "yes", "y", "on"})
_FALSE = frozenset({"0", "false", "f", "no", "n", "off"})


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are `UsageError`s naming the command, and no more.

    Two of argparse's habits are changed to click's (and GitLab Runner's): a
    flag's value may start with a dash (`--token -Xy3z`, an older runner token),
    and the job names of `submit` mix with its options even after `--`.
    """

    def __init__(self, command: str = "", description: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("prog", f"{PROG} {command}")  # a subcommand's parser gets its prog
        kwargs.setdefault("allow_abbrev", False)  # `--metrics` is not `--metrics-server`
        super().__init__(description=description, **kwargs)
        self.command = self.prog.removeprefix(f"{PROG} ")
        self.words: str | None = None  # the dest of a positional that takes any number of words
        self._takes_value: set[str] = set()

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        action = super().add_argument(*args, **kwargs)
        if action.option_strings and action.nargs is None:  # exactly one value
            self._takes_value.update(action.option_strings)
        return action

    def add_words(self, dest: str, **kwargs: Any) -> None:
        """Add the positional `dest` of any number of words, mixed with the options."""
        self.add_argument(dest, nargs="*", **kwargs)
        self.words = dest

    def parse(self, argv: Sequence[str]) -> argparse.Namespace:
        """Parse `argv`: the words of `add_words` may stand anywhere, and after `--`."""
        if self.words is None:
            parsed, extras = self.parse_known_args(argv)
            if extras:  # a subcommand's parser left them: blame it, not its group
                chosen: Parser = getattr(parsed, "parser", self)
                chosen.error(f"unrecognized arguments: {' '.join(extras)}")
            return parsed
        # parse_intermixed_args of Python 3.11 loses `--`: the words after it are ours.
        before, after = _split(list(argv))
        parsed = self.parse_intermixed_args(before)
        getattr(parsed, self.words).extend(after)
        return parsed

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        return super().parse_known_args(self._joined(list(args or [])), namespace)

    def _joined(self, argv: list[str]) -> list[str]:
        """Join each option that takes a value with a next word that starts with a dash."""
        before, after = _split(argv)
        out: list[str] = []
        index = 0
        while index < len(before):
            word = before[index]
            following = before[index + 1] if index + 1 < len(before) else None
            if word in self._takes_value and following is not None and following.startswith("-"):
                out.append(f"{word}={following}" if word.startswith("--") else word + following)
                index += 2
                continue
            out.append(word)
            index += 1
        return [*out, "--", *after] if "--" in argv else out

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.command}: {message} (see '{self.prog} --help')")


def _split(argv: list[str]) -> tuple[list[str], list[str]]:
    """Return the words before the first `--` and those after it."""
    if "--" not in argv:
        return argv, []
    at = argv.index("--")
    return argv[:at], argv[at + 1 :]


@dataclass(frozen=True)
class FromEnv:
    """An option whose value, when the flag is absent, is an environment variable's."""

    dest: str
    variable: str
    convert: Callable[[str], Any] = str


def add_env_option(
    parser: argparse.ArgumentParser, *flags: str, env: str, help: str = "", **kwargs: Any
) -> FromEnv:
    """Add an option that falls back to `$env`; apply `read_env` after parsing.

    The flag's default must be None (the flag was not given): `read_env` then
    converts the variable with the option's type, and an empty variable counts as
    unset, as click and GitLab Runner's urfave/cli read them.
    """
    text = f"{help} [env: {env}]" if help else f"[env: {env}]"
    action = parser.add_argument(*flags, help=text, default=None, **kwargs)
    convert = action.type if callable(action.type) else str
    if action.nargs == 0:  # a flag (store_true): its variable is a boolean
        convert = boolean
    return FromEnv(action.dest, env, convert)


def read_env(namespace: argparse.Namespace, options: Sequence[FromEnv]) -> None:
    """Fill each option that was not given on the command line from its variable."""
    for option in options:
        if getattr(namespace, option.dest) is not None:
            continue
        raw = os.environ.get(option.variable, "")
        if not raw:
            continue
        try:
            value = option.convert(raw)
        except (argparse.ArgumentTypeError, ValueError) as exc:
            raise UsageError(f"${option.variable}: {exc}") from None
        setattr(namespace, option.dest, value)


def boolean(text: str) -> bool:
    """A boolean as GitLab Runner's flags and click take it: true/false, yes/no, 1/0, on/off."""
    folded = text.strip().lower()
    if folded in _TRUE:
        return True
    if folded in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not a boolean (true or false)")


def at_least(minimum: int) -> Callable[[str], int]:
    """An integer type that refuses values below `minimum`."""

    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is less than {minimum}")
        return value

    convert.__name__ = f"integer >= {minimum}"
    return convert


def file_path(text: str) -> Path:
    """A path to a file: it may not exist yet, but it is not a directory."""
    path = Path(text)
    if _stat_mode(text) == "directory":
        raise argparse.ArgumentTypeError(f"{text!r} is a directory, not a file")
    return path


def dir_path(text: str) -> Path:
    """A path to a directory: it may not exist yet, but it is not a file."""
    path = Path(text)
    if _stat_mode(text) == "other":
        raise argparse.ArgumentTypeError(f"{text!r} is not a directory")
    return path


def _stat_mode(text: str) -> str:
    """'missing', 'directory' or 'other'; a path that cannot be looked at is a usage error."""
    try:
        mode = os.stat(text).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return "missing"
    except OSError as exc:  # too long, not searchable: the flag's value is what is wrong
        raise argparse.ArgumentTypeError(f"{text!r}: {exc.strerror}") from None
    return "directory" if stat.S_ISDIR(mode) else "other"
