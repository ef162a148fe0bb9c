"""The command line's parser (cli/args.py) and `register`'s prompts, in-process.

What click did for the CLI before, checked where argparse alone would differ:
usage errors are one line naming the command, flags are not abbreviated,
options and arguments mix, environment variables fill absent flags (and a bad
one is named), and the value types refuse what click refused.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import pytest

from alloy_runner.cli import main, runners, spool
from alloy_runner.cli.args import at_least, boolean, dir_path, file_path, read_env
from alloy_runner.cli.main import COMMANDS
from alloy_runner.cli.register_prompts import prompt
from alloy_runner.exceptions import ConfigError, UsageError
from tests.support.cli import Invoke, assert_one_error_line

EXIT_USAGE = 2


def test_help_lists_every_command(invoke: Invoke) -> None:
    """`alloy-runner --help` prints every command with its summary and exits 0."""
    ran = invoke(["--help"])
    assert ran.status == 0, ran.stderr
    for name, (_module, summary) in COMMANDS.items():
        assert f"  {name} " in ran.stdout
        assert summary in ran.stdout


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_each_command_has_help(invoke: Invoke, command: str) -> None:
    """`alloy-runner COMMAND --help` prints the command's usage on stdout and exits 0."""
    ran = invoke([command, "--help"])
    assert ran.status == 0, ran.stderr
    assert ran.stdout.startswith(f"usage: alloy-runner {command} "), ran.stdout
    assert ran.stderr == ""


@pytest.mark.parametrize(
    ("argv", "fragments"),
    [
        ([], ["a command is needed", "run", "register"]),
        (["--verbose"], ["no such option '--verbose'"]),
        (["walk"], ["no such command 'walk'"]),
        (["exec"], ["exec:", "EXECUTOR"]),
        (["exec", "docker", "job"], ["exec:", "'docker'"]),
        (["run", "--metrics", ":1"], ["run:", "unrecognized arguments: --metrics"]),
        (["run", "--config", "."], ["run:", "'.' is a directory"]),
        (["cancel", "seven"], ["cancel:", "invalid int value: 'seven'"]),
        (["submit", "--var", "NOVALUE", "--dry-run"], ["--var: 'NOVALUE' is not KEY=VALUE"]),
        (["register", "--limit", "-1"], ["register:", "-1 is less than 0"]),
        (["register", "--executor", "ssh"], ["register:", "'ssh' is not one of"]),
        (["exec", "shell", "job", "--bogus"], ["exec shell: unrecognized arguments: --bogus"]),
        (["list", "-c", "/tmp/" + "a" * 300 + "/x.toml"], ["list:", "File name too long"]),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) and value else None,
)
def test_usage_errors_are_one_line(invoke: Invoke, argv: list[str], fragments: list[str]) -> None:
    """Every usage error is one `alloy-runner: error:` line on stderr and exit 2."""
    assert_one_error_line(invoke(argv), EXIT_USAGE, *fragments)


def test_options_and_job_names_mix(tmp_path: Path) -> None:
    """`submit a --wait b` names two jobs, as click parsed it (argparse's intermixed parse)."""
    parsed = spool.parser("submit", "").parse(["a", "--wait", "b", "--var", "K=V"])
    assert parsed.jobs == ["a", "b"]
    assert parsed.wait is True
    assert parsed.plain == ["K=V"]


def test_words_after_double_dash_are_job_names() -> None:
    """After `--` every word is a job name, even one that looks like an option."""
    parser = spool.parser("submit", "")
    assert parser.parse(["--", "--wait"]).jobs == ["--wait"]
    assert parser.parse(["--", "--wait"]).wait is False
    parsed = parser.parse(["a", "--json", "--", "b", "--dry-run"])
    assert (parsed.jobs, parsed.as_json, parsed.dry_run) == (["a", "b", "--dry-run"], True, False)


def test_a_value_may_start_with_a_dash() -> None:
    """A flag's value that starts with `-` is its value (an older token, a variable)."""
    unregister = runners.parser("unregister", "")
    assert unregister.parse(["--token", "-Xy3z"]).token == "-Xy3z"
    assert unregister.parse(["-t", "-Xy3z", "-n", "a"]).token == "-Xy3z"
    submit = spool.parser("submit", "").parse(["--var", "-X=1", "job", "--", "--var"])
    assert submit.plain == ["-X=1"]
    assert submit.jobs == ["job", "--var"]


def test_environment_fills_absent_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    """register's variables give what the command line left out, converted by the flag's type."""
    monkeypatch.setenv("CI_SERVER_URL", "http://from-env.test")
    monkeypatch.setenv("RUNNER_LIMIT", "3")
    monkeypatch.setenv("REGISTER_LOCKED", "off")
    monkeypatch.setenv("REGISTER_NON_INTERACTIVE", "1")
    monkeypatch.setenv("RUNNER_NAME", "")  # empty: unset
    parsed = runners.parser("register", "").parse(["--url", "http://from-flag.test"])
    read_env(parsed, parsed.from_env)
    assert parsed.url == "http://from-flag.test"  # the flag wins
    assert parsed.limit == 3
    assert parsed.locked is False
    assert parsed.non_interactive is True
    assert parsed.name is None


def test_a_bad_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """A variable the flag's type refuses is a usage error naming the variable."""
    monkeypatch.setenv("RUNNER_REQUEST_CONCURRENCY", "0")
    parsed = runners.parser("register", "").parse([])
    with pytest.raises(UsageError, match=r"\$RUNNER_REQUEST_CONCURRENCY: 0 is less than 1"):
        read_env(parsed, parsed.from_env)


def test_optional_booleans() -> None:
    """`--locked` alone is true, `--locked=false` false, absent None (GitLab Runner's form)."""
    parser = runners.parser("register", "")
    assert parser.parse(["--locked"]).locked is True
    assert parser.parse(["--locked=false"]).locked is False
    assert parser.parse(["--paused", "yes"]).paused is True
    assert parser.parse([]).run_untagged is None


def test_value_types(tmp_path: Path) -> None:
    """The types refuse what click's refused: directories as files, files as directories."""
    assert boolean("TRUE") is True
    assert boolean(" no ") is False
    with pytest.raises(argparse.ArgumentTypeError):
        boolean("maybe")
    assert at_least(1)("5") == 5
    with pytest.raises(argparse.ArgumentTypeError, match="not an integer"):
        at_least(0)("1.5")
    a_file = tmp_path / "f"
    a_file.write_text("")
    assert file_path(str(tmp_path / "new.toml")) == tmp_path / "new.toml"
    with pytest.raises(argparse.ArgumentTypeError, match="is a directory"):
        file_path(str(tmp_path))
    assert dir_path(str(tmp_path / "new")) == tmp_path / "new"
    with pytest.raises(argparse.ArgumentTypeError, match="not a directory"):
        dir_path(str(a_file))


def test_prompt_takes_default_and_asks_again(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An empty answer takes the default; an answer outside the choices is asked again."""
    monkeypatch.setattr("sys.stdin", io.StringIO("\nssh\ndocker\n"))
    assert prompt("Enter a name", default="host") == "host"
    assert prompt("Enter an executor", default="shell", choices=["shell", "docker"]) == "docker"
    err = capsys.readouterr().err
    assert "Enter a name [host]: " in err
    assert "Enter an executor (shell, docker) [shell]: " in err
    assert "'ssh' is not one of shell, docker" in err


def test_text_the_output_encoding_lacks_is_escaped(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`list` of a runner named in Unicode on an ASCII stdout escapes it: no traceback."""
    config = tmp_path / "config.toml"
    config.write_text('[[runners]]\nname = "r\u00fcnner"\nurl = "http://x.test"\ntoken = "t"\n')
    raw = io.BytesIO()
    monkeypatch.setattr("sys.stdout", io.TextIOWrapper(raw, encoding="ascii"))
    main(["list", "--config", str(config)])
    assert b"r\\xfcnner" in raw.getvalue()


def test_prompt_without_default_asks_until_answered(monkeypatch: pytest.MonkeyPatch) -> None:
    """No default: an empty answer is asked again; the end of input is a clear error."""
    monkeypatch.setattr("sys.stdin", io.StringIO("\n  \nhttp://x.test\n"))
    assert prompt("Enter the URL") == "http://x.test"
    monkeypatch.setattr("sys.stdin", io.StringIO("\n"))
    with pytest.raises(ConfigError, match="Enter the token: no answer before the end of input"):
        prompt("Enter the token")
