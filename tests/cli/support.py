"""Run `alloy_runner.cli.main(argv)` in this process and keep its exit status and output."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from alloy_runner.cli import main


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
        status = exc.code if isinstance(exc.code, int) else 1
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
