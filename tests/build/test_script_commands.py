"""Each command of a script written as GitLab Runner's writeCommands writes it: trimmed of its
surrounding white space (strings.TrimSpace), echoed, run; in real bash."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from alloy_runner.build import script

HEREDOC = "cat <<EOF\nhi\nEOF "  # the terminator line ends with a space


def bash(body: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", body], cwd=cwd, capture_output=True, text=True)


@pytest.mark.parametrize("check", [False, True])
def test_a_heredoc_terminator_with_a_trailing_space_ends_the_heredoc(
    tmp_path: Path, check: bool
) -> None:
    """Untrimmed, `EOF ` does not end the heredoc: it swallows the rest of the script and the
    job passes; GitLab trims each command, so `false` runs and fails the job."""
    for body in (
        script.user_script([HEREDOC, "false", "touch after"], check=check),
        script.commands([HEREDOC, "false", "touch after"], check),
    ):
        done = bash(body, tmp_path)
        assert done.returncode == 1, done.stdout
        assert "hi\n" in done.stdout
        assert not (tmp_path / "after").exists()


def test_commands_are_echoed_trimmed_and_multi_line_ones_collapsed(tmp_path: Path) -> None:
    done = bash(script.commands(["  echo one  ", "echo two\necho three\n"]), tmp_path)
    assert done.returncode == 0
    lines = [line for line in done.stdout.splitlines() if "$ " in line]
    assert [line.split("$ ", 1)[1].removesuffix("\x1b[0;m") for line in lines] == [
        "echo one",
        "echo two # collapsed multi-line command",
    ]
    assert "\none\n" in done.stdout
    assert done.stdout.endswith("\ntwo\nthree\n")


def test_an_empty_command_is_an_empty_line(tmp_path: Path) -> None:
    """GitLab's EmptyLine: `echo`, no `$ ` line."""
    done = bash(script.user_script(["echo a", "   ", "echo b"]), tmp_path)
    assert done.returncode == 0
    assert done.stdout.count("$ ") == 2
    assert "a\n\n" in done.stdout
