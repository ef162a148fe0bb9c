"""`alloy-runner ARGS` in this process, through `alloy_runner.cli.main(argv)`.

The environment and working directory are those `run_cli` gives the real
executable (HOME in a temporary directory, no inherited runner settings), set
with monkeypatch; stdout and stderr are read with capsys. The daemon itself
must never start here: `alloy_runner.app.daemon.run` is replaced by a stub
that fails the test, so input that validates cannot hang it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from alloy_runner.cli import main
from tests.support.runner import runner_env


@dataclass(frozen=True)
class Completed:
    """What `main(argv)` did: its exit status and what it wrote (as subprocess.CompletedProcess)."""

    returncode: int
    stdout: str
    stderr: str


Invoke = Callable[..., Completed]


def _daemon_must_not_start(*args: object, **kwargs: object) -> None:
    raise AssertionError("the input validated and the daemon would start: not an error path")


def make_invoke(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], home: Path
) -> Invoke:
    """Return `invoke(args, env=None)`: run `main(args)` hermetically in `home`."""
    monkeypatch.setattr("alloy_runner.app.daemon.run", _daemon_must_not_start)

    def invoke(args: Sequence[str], env: Mapping[str, str | None] | None = None) -> Completed:
        with monkeypatch.context() as patch:
            wanted = runner_env(home, env)
            for key in list(os.environ):
                if key not in wanted:
                    patch.delenv(key)
            for key, value in wanted.items():
                patch.setenv(key, value)
            patch.chdir(home)
            capsys.readouterr()
            try:
                main(list(args))
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            out, err = capsys.readouterr()
        return Completed(code, out, err)

    return invoke
