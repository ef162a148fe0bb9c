"""`alloy-runner ARGS` in this process, through `alloy_runner.cli.main(argv)`.

- `run_main(capsys, *argv)`: run the command, return a `Ran` (exit status, stdout, stderr).
- `make_invoke(...)` (the `invoke` fixture): the same, hermetic the way `run_cli` is
  for the real executable. HOME and the working directory are a temporary
  directory, and no inherited runner settings are in the environment. The
  daemon never starts: `alloy_runner.app.daemon.run` is replaced by a stub that
  fails the test, so input that validates cannot hang it.
- `make_invoke(..., wiring=True)` (the `invoke_wiring` fixture): the same, but the
  real `daemon.run` builds every part with the real `wire(config)`, so what only
  the wiring refuses (the web config, the OTEL_* variables) is refused as in the
  executable. Only `Daemon`, which binds the metrics server and runs the loop, is
  a stub that takes the parts down and fails the test.
- `assert_one_error_line(ran, status, *fragments)`: the CLI's error contract.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from alloy_runner.cli import main
from tests.support.runner import runner_env

if TYPE_CHECKING:
    from alloy_runner.app.wiring import Components


@dataclass(frozen=True)
class Ran:
    """What one in-process `alloy-runner` command did."""

    status: int
    stdout: str
    stderr: str

    @property
    def error_lines(self) -> list[str]:
        return self.stderr.splitlines()


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> Ran:
    """Run `alloy-runner ARGV` through `main`; a return without SystemExit is status 0."""
    capsys.readouterr()  # what earlier steps printed is not this command's
    try:
        main(list(argv))
        status = 0
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out, err = capsys.readouterr()
    return Ran(status, out, err)


def assert_one_error_line(ran: Ran, status: int, *fragments: str) -> str:
    """Assert exit `status`, no traceback, one `alloy-runner: error:` line with `fragments`."""
    assert ran.status == status, ran
    assert "Traceback" not in ran.stderr
    assert len(ran.error_lines) == 1, ran.stderr
    (line,) = ran.error_lines
    assert line.startswith("alloy-runner: error: "), line
    for fragment in fragments:
        assert fragment in line, line
    return line


Invoke = Callable[..., Ran]


def _daemon_must_not_start(*args: object, **kwargs: object) -> None:
    raise AssertionError("the input validated and the daemon would start: not an error path")


class _DaemonMustNotRun:
    """Stands for `Daemon` when the wiring is real: the parts were built, so nothing was refused."""

    def __init__(self, parts: Components) -> None:
        parts.observability.shutdown(1.0)
        parts.runner.close()
        raise AssertionError("the input wired and the daemon would start: not an error path")


@contextmanager
def logging_kept() -> Iterator[None]:
    """Put back this package's logging, which a `wire` that went far enough configured."""
    loggers = [logging.getLogger(name) for name in ("alloy_runner", "opentelemetry")]
    saved = [(lg, list(lg.handlers), lg.propagate, lg.level) for lg in loggers]
    try:
        yield
    finally:
        for logger, handlers, propagate, level in saved:
            logger.handlers[:] = handlers
            logger.propagate = propagate
            logger.setLevel(level)


def make_invoke(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    home: Path,
    *,
    wiring: bool = False,
) -> Invoke:
    """Return `invoke(args, env=None)`: run `main(args)` hermetically in `home`.

    `wiring`: run the real `daemon.run` and `wire` up to the `Daemon`, which is a stub.
    """
    if wiring:
        monkeypatch.setattr("alloy_runner.app.daemon.Daemon", _DaemonMustNotRun)
    else:
        monkeypatch.setattr("alloy_runner.app.daemon.run", _daemon_must_not_start)

    def invoke(args: Sequence[str], env: Mapping[str, str | None] | None = None) -> Ran:
        with monkeypatch.context() as patch, logging_kept():
            wanted = runner_env(home, env)
            for key in list(os.environ):
                if key not in wanted:
                    patch.delenv(key)
            for key, value in wanted.items():
                patch.setenv(key, value)
            patch.chdir(home)
            return run_main(capsys, *args)

    return invoke
