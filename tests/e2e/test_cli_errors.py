"""Bad input to the real `alloy-runner` executable: exit status 2 and one line on stderr.

A smoke of the error paths tests/cli/test_errors.py covers in-process, plus what
only a real process shows: the metrics address resolved and bound, and the
precedence of flag, environment and file on a running process.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Mapping
from pathlib import Path

import pytest

from alloy_runner import __version__
from tests.support import StartRunner, run_cli

EXIT_USAGE = 2

# A runner table, so nothing is logged before the metrics server binds (no runner would warn).
# It goes last: top-level keys written after it would belong to the runner.
RUNNER = '[[runners]]\nname = "a"\n'


def _run(
    tmp_path: Path,
    config: str | None,
    *args: str,
    env: Mapping[str, str | None] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `alloy-runner run` with `config` as config.toml (None: no --config) and `args`."""
    command = ["run"]
    if config is not None:
        path = tmp_path / "config.toml"
        path.write_text(config, encoding="utf-8")
        command += ["--config", str(path)]
    return run_cli([*command, *args], home=tmp_path, env=env)


def _assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    """Assert exit status 2 and exactly one stderr line, an error containing every fragment."""
    assert result.returncode == EXIT_USAGE, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    (line,) = lines
    assert line.startswith("alloy-runner: error: ")
    for fragment in fragments:
        assert fragment in line


def test_bad_config_file(tmp_path: Path) -> None:
    """A config file that does not parse is one error line naming the file and the line."""
    result = _run(tmp_path, "concurrent = \n")
    _assert_one_line_error(result, str(tmp_path / "config.toml"), "TOML syntax error", "line 1")


def test_unknown_command(tmp_path: Path) -> None:
    """An unknown command is one error line naming it."""
    _assert_one_line_error(run_cli(["walk"], home=tmp_path), "walk")


BAD_ADDRESSES = [
    pytest.param("[::1", "missing ']'", id="missing-bracket"),
    pytest.param("no-such-host.invalid:0", "does not resolve", id="unresolvable"),
]


@pytest.mark.parametrize(("address", "fragment"), BAD_ADDRESSES)
def test_bad_address_flag(tmp_path: Path, address: str, fragment: str) -> None:
    """A bad --metrics-server is one error line quoting the address and the reason."""
    result = _run(tmp_path, RUNNER, "--metrics-server", address)
    _assert_one_line_error(result, repr(address), fragment)


def test_flag_wins_over_bad_env_and_file(start_runner: StartRunner) -> None:
    """A good --metrics-server is used though the env and the file hold bad addresses."""
    runner = start_runner('metrics_server = "[::1"\n', env={"METRICS_SERVER": "http://x"})
    assert runner.scrape()[0]["content-type"].startswith("text/plain")


def test_env_wins_over_bad_file(start_runner: StartRunner) -> None:
    """A good METRICS_SERVER is used (there is no flag) though the file holds a bad address."""
    runner = start_runner(
        'metrics_server = "[::1"\n', metrics_server=None, env={"METRICS_SERVER": "127.0.0.1:0"}
    )
    assert runner.address is not None
    assert runner.host == "127.0.0.1"
    assert runner.scrape()[0]["content-type"].startswith("text/plain")


def test_taken_port(tmp_path: Path) -> None:
    """A port another socket listens on is one error line: address already in use."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = _run(tmp_path, RUNNER, "--metrics-server", f"127.0.0.1:{port}")
    _assert_one_line_error(result, f"127.0.0.1:{port}", "address already in use")


def test_version(tmp_path: Path) -> None:
    """`alloy-runner --version` prints the build banner on stdout and exits 0."""
    result = run_cli(["--version"], home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert [line.split(":", 1)[0] for line in lines] == [
        "Version",
        "Git revision",
        "Git branch",
        "Python",
        "Built",
        "OS/Arch",
    ]
    assert lines[0].split()[-1] == __version__
