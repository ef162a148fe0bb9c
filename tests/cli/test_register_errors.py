"""`register` without what it needs and no terminal to ask on: exit 2, one line.

In-process through `main(argv)`; the values are checked by cli/register_prompts.py
before any request. tests/e2e/coordinator/test_registration.py keeps one bad
`register` against the real executable.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from tests.support.cli import Invoke, assert_one_error_line

EXIT_USAGE = 2


@pytest.fixture(autouse=True)
def no_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Standard input is not a terminal, as under `run_cli`: nothing is asked."""
    monkeypatch.setattr("sys.stdin", io.StringIO())


def test_register_without_a_token_non_interactively_exits_2(invoke: Invoke, tmp_path: Path) -> None:
    """--non-interactive and no token: one line naming --token and $CI_SERVER_TOKEN."""
    config = tmp_path / "c.toml"
    ran = invoke(["register", "-n", "-c", str(config), "-u", "http://127.0.0.1:9"])
    assert_one_error_line(ran, EXIT_USAGE, "CI_SERVER_TOKEN", "authentication token is needed")
    assert not config.exists()


def test_register_without_a_url_or_a_token_exits_2(invoke: Invoke, tmp_path: Path) -> None:
    """No URL and nothing on standard input to ask with: one line naming --url."""
    config = tmp_path / "c.toml"
    ran = invoke(["register", "-c", str(config), "--name", "ci"])
    assert_one_error_line(ran, EXIT_USAGE, "--url (or $CI_SERVER_URL)")
    assert not config.exists()
