"""`submit` refuses jobs no runner could run safely: exit 2, one line naming job and variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from alloy_runner.cli import main


def _submit(tmp_path: Path, text: str, *extra: str) -> tuple[int, list[str]]:
    ci = tmp_path / ".alloy-ci.yml"
    ci.write_text(text)
    spool = tmp_path / "spool"
    with pytest.raises(SystemExit) as exited:
        main(["submit", "--file", str(ci), "--spool", str(spool), *extra])
    code = exited.value.code
    return int(code) if isinstance(code, int) else 1, [str(p) for p in spool.glob("*/*.json")]


@pytest.mark.parametrize(
    ("variables", "fragment"),
    [
        ('{"A=B": x}', "variable 'A=B'"),
        ('{"": x}', "variable ''"),
        ('{GOOD: "a\\0b"}', "variable GOOD: its value holds a NUL byte"),
    ],
)
def test_a_variable_no_process_can_hold_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], variables: str, fragment: str
) -> None:
    """Such a variable used to pass submit and fail the job with a Popen traceback."""
    code, queued = _submit(tmp_path, f"build:\n  variables: {variables}\n  script: [echo]\n")
    lines = capsys.readouterr().err.splitlines()
    assert code == 2
    assert queued == []
    assert len(lines) == 1 and "job 'build'" in lines[0] and fragment in lines[0], lines


def test_a_short_masked_value_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A one-letter masked value would mask that letter everywhere: GitLab needs 8 characters."""
    code, queued = _submit(tmp_path, "build:\n  script: [echo]\n", "--masked-var", "TOKEN=x")
    lines = capsys.readouterr().err.splitlines()
    assert code == 2
    assert queued == []
    assert len(lines) == 1 and "masked variable TOKEN" in lines[0] and "8 characters" in lines[0]


@pytest.mark.parametrize("name", ['"a\\nINFO forged line"', '"tab\\there"', '"nul\\0"'])
def test_a_job_name_with_control_characters_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    """A newline in a job name would write forged lines into the runner's log."""
    code, queued = _submit(tmp_path, f"{name}:\n  script: [echo]\n")
    lines = capsys.readouterr().err.splitlines()
    assert code == 2
    assert queued == []
    assert len(lines) == 1 and "control characters" in lines[0], lines
