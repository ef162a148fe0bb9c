"""`register` input that the coordinator client refuses before any request: exit 2, one line.

In-process through `main(argv)`. The URL is checked by coordinator/gitlab/api.py
(`api_base`), the flags that belong to the server by registration.py. An
unreachable coordinator (exit 1) is in tests/cli/test_exit_status.py; the real
executable's exit 2 in tests/e2e/coordinator/test_registration.py.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from tests.support.cli import Invoke, assert_one_error_line
from tests.support.fake_coordinator import StartFake

EXIT_USAGE = 2
USER_CONFIG = """\
# written by hand: every comment must survive
concurrent = 2  # two at once

[[runners]]
name = "local"  # the spool runner
executor = "shell"
"""


@pytest.fixture(autouse=True)
def no_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Standard input is not a terminal, as under `run_cli`: nothing is asked."""
    monkeypatch.setattr("sys.stdin", io.StringIO())


@pytest.mark.parametrize("url", ["ftp://example.test", "http://[::1"])
def test_register_with_a_url_that_is_not_http_exits_2(
    invoke: Invoke, tmp_path: Path, url: str
) -> None:
    """A URL that is not http(s) (or does not even split) is one line quoting it; no file."""
    config = tmp_path / "c.toml"
    ran = invoke(["register", "-c", str(config), "-u", url, "-r", "x", "--name", "ci"])
    assert_one_error_line(ran, EXIT_USAGE, f"url {url!r}", "http:// or https://")
    assert not config.exists()


def test_register_refuses_server_side_flags_with_an_authentication_token(
    invoke: Invoke, tmp_path: Path, start_fake: StartFake
) -> None:
    """--tag-list and --locked belong to the server with --token: refused, nothing asked of it."""
    fake = start_fake()
    config = tmp_path / "config.toml"
    config.write_text(USER_CONFIG)
    args = ["register", "-n", "-c", str(config), "-u", fake.url, "-t", fake.runner_token]
    ran = invoke([*args, "--tag-list", "a,b", "--locked=false"])
    assert_one_error_line(ran, EXIT_USAGE, "--tag-list, --locked", "cannot be given with --token")
    assert config.read_text() == USER_CONFIG
    assert fake.count("verify_runner") == 0
