"""`alloy-runner run` settings that cli/run.py refuses before the daemon: exit 2, one line.

In-process through `main(argv)` (the daemon never starts). The namings the
metrics server exposes come from the flag, $METRIC_NAMES or the file; a bad
one is refused naming where it came from. So are a `--user` this process cannot
become and a `--working-directory` it cannot enter.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from alloy_runner.cli.run import check_user
from alloy_runner.exceptions import ConfigError
from tests.support.cli import Invoke, assert_one_error_line

EXIT_USAGE = 2


@pytest.mark.parametrize(
    ("config", "env", "args", "fragments"),
    [
        ('metric_names = "prometheus"\n', {}, [], ["key 'metric_names'", "got 'prometheus'"]),
        ("", {"METRIC_NAMES": "GitLab"}, [], ["$METRIC_NAMES", "got 'GitLab'"]),
        (
            "",
            {},
            ["--metric-names", "gitlab_runner"],
            ["--metric-names: invalid", "'gitlab_runner'"],
        ),
    ],
    ids=["file", "env", "flag"],
)
def test_a_bad_naming_is_refused_with_one_line_and_exit_2(
    invoke: Invoke,
    tmp_path: Path,
    config: str,
    env: dict[str, str],
    args: list[str],
    fragments: list[str],
) -> None:
    """A naming that is not alloyci, gitlab or both: one line saying where and what it was."""
    (tmp_path / "config.toml").write_text(config)
    ran = invoke(["run", "-c", str(tmp_path / "config.toml"), *args], env)
    assert_one_error_line(ran, EXIT_USAGE, *fragments)


def test_user_is_refused_unless_root_or_when_unknown(invoke: Invoke) -> None:
    """`--user` needs root, and a user that exists: otherwise one line naming the flag."""
    with pytest.raises(ConfigError, match="needs the runner to run as root"):
        check_user("nobody", 1000, "--user")
    check_user("", 1000, "--user")  # no user: nothing to check
    with pytest.raises(ConfigError, match="there is no user 'no-such-user-here' on this host"):
        check_user("no-such-user-here", 0, "--user")
    ran = invoke(["run", "--user", "no-such-user-here"])
    if os.geteuid() == 0:
        assert_one_error_line(ran, EXIT_USAGE, "--user", "no user 'no-such-user-here'")
    else:
        assert_one_error_line(ran, EXIT_USAGE, "--user", "needs the runner to run as root")


def test_a_working_directory_that_cannot_be_entered_is_refused(
    invoke: Invoke, tmp_path: Path
) -> None:
    """`--working-directory` that does not exist: one line naming the flag and the path."""
    missing = tmp_path / "nowhere"
    ran = invoke(["run", "--working-directory", str(missing)])
    assert_one_error_line(ran, EXIT_USAGE, "--working-directory", f"cannot enter {missing}")
    assert not missing.exists()
