"""Bad input to `alloy-runner`, in-process through `main(argv)`: exit 2 and one stderr line.

A few of these also run against the real executable in tests/e2e/test_cli_errors.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from alloy_runner import __version__
from tests.support.cli import Invoke, Ran, assert_one_error_line

EXIT_USAGE = 2

# A runner table, so nothing is logged before the metrics server binds (no runner would warn).
# It goes last: top-level keys written after it would belong to the runner.
RUNNER = '[[runners]]\nname = "a"\n'


def _run(
    invoke: Invoke,
    tmp_path: Path,
    config: str | None,
    *args: str,
    env: Mapping[str, str | None] | None = None,
) -> Ran:
    """Run `alloy-runner run` with `config` as config.toml (None: no --config) and `args`."""
    command = ["run"]
    if config is not None:
        path = tmp_path / "config.toml"
        path.write_text(config, encoding="utf-8")
        command += ["--config", str(path)]
    return invoke([*command, *args], env=env)


def _assert_one_line_error(result: Ran, *fragments: str) -> None:
    """Assert exit status 2 and exactly one stderr line, an error containing every fragment."""
    assert_one_error_line(result, EXIT_USAGE, *fragments)


BAD_CONFIGS = [
    pytest.param("concurrent = \n", ["TOML syntax error", "line 1"], id="toml-syntax"),
    pytest.param('concurrent = "four"\n', ["'concurrent'", "integer", "'four'"], id="wrong-type"),
    pytest.param("concurrent = 0\n", ["'concurrent'", "from 1 to", "got 0"], id="concurrent-zero"),
    pytest.param("concurrent = true\n", ["'concurrent'", "got True"], id="concurrent-bool"),
    pytest.param('log_format = "xml"\n', ["'log_format'", "text, json", "'xml'"], id="log-format"),
    pytest.param('log_level = "loud"\n', ["'log_level'", "'loud'"], id="log-level"),
    pytest.param('runners = "many"\n', ["'runners'", "array of tables"], id="runners-string"),
    pytest.param("[runners]\nname = 'a'\n", ["'runners'", "array of tables"], id="runners-table"),
    pytest.param(
        "[[runners]]\nname = 'a'\n[[runners]]\nname = 'a'\n",
        ["two [[runners]] are named 'a'"],
        id="duplicate-runner",
    ),
    pytest.param(
        "[[runners]]\nname = 'a'\nlimit = -1\n", ["'runners[0].limit'", "got -1"], id="runner-key"
    ),
    pytest.param(
        'metrics_server = ":1"\nlisten_address = ":2"\n',
        ["metrics_server and listen_address are aliases"],
        id="alias-conflict",
    ),
    pytest.param("metrics_server = 9252\n", ["'metrics_server'", "a string"], id="address-type"),
]


@pytest.mark.parametrize(("config", "fragments"), BAD_CONFIGS)
def test_bad_config_file(invoke: Invoke, tmp_path: Path, config: str, fragments: list[str]) -> None:
    """A config file that does not validate is one error line naming the file and the key."""
    result = _run(invoke, tmp_path, config)
    _assert_one_line_error(result, str(tmp_path / "config.toml"), *fragments)


def test_bad_address_in_file(invoke: Invoke, tmp_path: Path) -> None:
    """A bad `metrics_server` in the file (and no flag or env) is one error line quoting it."""
    result = _run(invoke, tmp_path, 'metrics_server = "[::1"\n' + RUNNER)
    _assert_one_line_error(result, "'[::1'", "missing ']'")


def test_missing_config_file(invoke: Invoke, tmp_path: Path) -> None:
    """A --config that does not exist is one error line naming the path."""
    result = invoke(["run", "--config", str(tmp_path / "nope.toml")])
    _assert_one_line_error(result, str(tmp_path / "nope.toml"), "does not exist")


def test_config_file_env_that_does_not_exist(invoke: Invoke, tmp_path: Path) -> None:
    """A CONFIG_FILE that does not exist is one error line naming the path."""
    result = invoke(["run"], env={"CONFIG_FILE": str(tmp_path / "gone.toml")})
    _assert_one_line_error(result, str(tmp_path / "gone.toml"), "does not exist")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["run", "--bogus"], "--bogus"),
        (["run", "--metrics-server"], "--metrics-server"),
        (["walk"], "walk"),
    ],
    ids=["unknown-option", "missing-value", "unknown-command"],
)
def test_bad_flags(invoke: Invoke, tmp_path: Path, args: list[str], fragment: str) -> None:
    """An unknown option or command, or an option without its value, is one error line."""
    _assert_one_line_error(invoke(args), fragment)


BAD_ADDRESSES = [
    pytest.param("[::1", "missing ']'", id="missing-bracket"),
    pytest.param("::1", "brackets", id="unbracketed-ipv6"),
    pytest.param("127.0.0.1:65536", "out of range", id="port-range"),
    pytest.param("http://127.0.0.1:1", "not a URL", id="url"),
    pytest.param("localhost:no-such-service", "unknown service", id="service"),
    pytest.param("localhost:²", "neither a port nor a service name", id="non-ascii-digit"),
    # An address that does not resolve is found when the daemon binds: tests/e2e/test_cli_errors.py.
]


@pytest.mark.parametrize(("address", "fragment"), BAD_ADDRESSES)
def test_bad_address_flag(invoke: Invoke, tmp_path: Path, address: str, fragment: str) -> None:
    """A bad --metrics-server is one error line quoting the address and the reason."""
    result = _run(invoke, tmp_path, RUNNER, "--metrics-server", address)
    _assert_one_line_error(result, repr(address), fragment)


def test_bad_address_env(invoke: Invoke, tmp_path: Path) -> None:
    """A bad METRICS_SERVER (and no flag) is one error line quoting the address."""
    result = _run(invoke, tmp_path, RUNNER, env={"METRICS_SERVER": "[::1"})
    _assert_one_line_error(result, "'[::1'", "missing ']'")


def test_bad_flag_wins_over_good_env_and_file(invoke: Invoke, tmp_path: Path) -> None:
    """A bad --metrics-server fails even when the env and the file hold good addresses."""
    result = _run(
        invoke,
        tmp_path,
        'metrics_server = "127.0.0.1:0"\n' + RUNNER,
        "--metrics-server",
        "[::1",
        env={"METRICS_SERVER": "127.0.0.1:0"},
    )
    _assert_one_line_error(result, "'[::1'")


def test_bad_env_wins_over_good_file(invoke: Invoke, tmp_path: Path) -> None:
    """A bad METRICS_SERVER fails (there is no flag) even when the file's address is good."""
    result = _run(
        invoke,
        tmp_path,
        'metrics_server = "127.0.0.1:0"\n' + RUNNER,
        env={"METRICS_SERVER": "[::1"},
    )
    _assert_one_line_error(result, "'[::1'")


def test_version(invoke: Invoke, tmp_path: Path) -> None:
    """`alloy-runner --version` prints the build banner on stdout and exits 0."""
    result = invoke(["--version"])
    assert result.status == 0, result.stderr
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
