"""`submit` of a .alloy-ci.yml that does not make a pipeline: exit 2, one line `FILE:LINE: ...`.

In-process through `main(argv)`; the pipeline modules find the error before
anything is queued. tests/e2e/jobs/test_exec_and_submit.py keeps one bad
pipeline against the real executable.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli import Invoke, Ran, assert_one_error_line

EXIT_USAGE = 2


def _submit(invoke: Invoke, tmp_path: Path, text: str) -> tuple[Path, Path, Ran]:
    """Write `text` as a project's .alloy-ci.yml and submit it; return file, spool, result."""
    project = tmp_path / "projects" / "bad"
    project.mkdir(parents=True)
    ci = project / ".alloy-ci.yml"
    ci.write_text(text, encoding="utf-8")
    spool = tmp_path / "spool"
    return ci, spool, invoke(["submit", "--file", str(ci), "--spool", str(spool)])


def _queued(spool: Path) -> list[Path]:
    """Every file in the spool (waiting, pending, pipelines ...): none for a refused pipeline."""
    return [path for path in spool.rglob("*") if path.is_file()]


BAD_PIPELINES = [
    pytest.param(
        "stages: [build]\nok:\n  stage: build\n  script: [echo]\nbad:\n  stage: deploy\n"
        "  script: [echo]\n",
        6,
        "stage 'deploy' is not in stages",
        id="unknown-stage",
    ),
    pytest.param("job:\n  script:\n    - echo one\n   - echo two\n", 4, "", id="yaml-syntax"),
    pytest.param(
        "job:\n  stage: test\n  when: sometimes\n  script: [echo]\n",
        3,
        "when must be one of",
        id="bad-when",
    ),
]


@pytest.mark.parametrize(("text", "line", "fragment"), BAD_PIPELINES)
def test_submit_of_a_bad_pipeline_exits_2_with_one_line_naming_file_and_line(
    invoke: Invoke, tmp_path: Path, text: str, line: int, fragment: str
) -> None:
    """`submit` of a bad .alloy-ci.yml exits 2, one stderr line `FILE:LINE: ...`, queues nothing."""
    ci, spool, ran = _submit(invoke, tmp_path, text)
    error = assert_one_error_line(ran, EXIT_USAGE, fragment)
    assert error.startswith(f"alloy-runner: error: {ci}:{line}:"), error
    assert ran.stdout == ""
    assert _queued(spool) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "include:\n  - template: Security/SAST.gitlab-ci.yml\nj: {script: x}\n",
            ":2: include: template 'Security/SAST.gitlab-ci.yml' cannot be fetched here"
            " (only local files can be included)",
        ),
        (
            "j:\n  script: x\n  rules:\n    - if: $A == 'x' &&\n",
            ":4: job 'j': if \"$A == 'x' &&\": the expression ends too early",
        ),
        (
            "a: {script: x, needs: [b]}\nb: {script: x, needs: [a]}\n",
            ":1: job 'a': needs loop: a -> b -> a",
        ),
        (
            "j:\n  script: x\n  parallel:\n    matrix:\n"
            "      - A: [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15]\n"
            "        B: [1,2,3,4,5,6,7,8,9,10,11,12,13,14]\n",
            ":4: job 'j': parallel:matrix makes more than 200 jobs (GitLab's limit)",
        ),
    ],
    ids=["include-template", "rules-expression", "needs-loop", "matrix-limit"],
)
def test_bad_input_exits_2_with_one_line(
    invoke: Invoke, tmp_path: Path, text: str, expected: str
) -> None:
    """The whole line is the file, the line number and what is wrong there."""
    ci, spool, ran = _submit(invoke, tmp_path, text)
    assert_one_error_line(ran, EXIT_USAGE)
    assert ran.stderr == f"alloy-runner: error: {ci}{expected}\n"
    assert _queued(spool) == []
