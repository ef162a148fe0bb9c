"""Predefined variables from the repository, and GitLab's variable precedence and expansion."""

from __future__ import annotations

from pathlib import Path

import pytest

from alloy_runner.build.expand import expand_all
from alloy_runner.exceptions import PipelineError
from alloy_runner.pipeline.repo import read_repo, slug
from tests.pipeline.support import commit, git, job, make_repo, read


def test_predefined_variables_come_from_the_repository(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "group" / "app", {"README": "x"}, "Add the readme\n\nBody text")
    git(root, "checkout", "-q", "-b", "feature/Login_Form")
    sha = commit(root, {"a.txt": "a"}, "Second commit")
    values = read_repo(root).predefined(7)
    assert values["CI_COMMIT_SHA"] == sha
    assert values["CI_COMMIT_SHORT_SHA"] == sha[:8]
    assert values["CI_COMMIT_REF_NAME"] == "feature/Login_Form"
    assert values["CI_COMMIT_BRANCH"] == "feature/Login_Form"
    assert "CI_COMMIT_TAG" not in values
    assert values["CI_COMMIT_REF_SLUG"] == "feature-login-form"
    assert values["CI_COMMIT_TITLE"] == "Second commit"
    assert values["CI_COMMIT_AUTHOR"] == "Alloy Tests <tests@alloy-runner.invalid>"
    assert values["CI_COMMIT_TIMESTAMP"].startswith("20")
    assert values["CI_DEFAULT_BRANCH"] == "main"
    assert values["CI_PIPELINE_SOURCE"] == "push"
    assert values["CI_PIPELINE_ID"] == values["CI_PIPELINE_IID"] == "7"
    assert values["CI_PROJECT_NAME"] == "app"
    assert values["CI_PROJECT_PATH"] == "group/app"
    assert values["GITLAB_CI"] == values["CI"] == "true"


def test_ref_and_source_choose_the_commit_and_kind_of_pipeline(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "p", {"README": "x"}, "Release 1.0")
    first = git(root, "rev-parse", "HEAD")
    git(root, "tag", "v1.0")
    commit(root, {"b": "b"}, "later")
    tagged = read_repo(root, "v1.0", "web")
    values = tagged.predefined()
    assert values["CI_COMMIT_SHA"] == first
    assert values["CI_COMMIT_TAG"] == "v1.0"
    assert "CI_COMMIT_BRANCH" not in values
    assert values["CI_PIPELINE_SOURCE"] == "web"
    assert values["CI_COMMIT_MESSAGE"] == "Release 1.0"
    first_repo = read_repo(root, first)
    assert first_repo.predefined()["CI_COMMIT_REF_NAME"] == first  # a bare commit is its ref
    with pytest.raises(PipelineError, match="names no commit"):
        read_repo(root, "no-such-ref")
    with pytest.raises(PipelineError, match="--source 'pushed'"):
        read_repo(root, None, "pushed")


@pytest.mark.parametrize(
    ("ref", "expected"),
    [("main", "main"), ("Feature/ABC_12", "feature-abc-12"), ("-x-", "x"), ("a" * 70, "a" * 63)],
)
def test_ref_slug_is_gitlabs(ref: str, expected: str) -> None:
    assert slug(ref) == expected


@pytest.mark.parametrize(
    ("values", "raw", "expected"),
    [
        ({"A": "a", "B": "$A-b"}, (), {"B": "a-b"}),
        ({"A": "a", "B": "${A}b"}, (), {"B": "ab"}),
        ({"A": "a", "B": "%A%b"}, (), {"B": "ab"}),
        ({"A": "$B", "B": "$C", "C": "deep"}, (), {"A": "deep"}),  # recursive
        ({"A": "a", "B": "$$A"}, (), {"B": "$A"}),  # $$ escapes
        ({"A": "a", "B": "$A"}, ("B",), {"B": "$A"}),  # expand: false
        ({"A": "$A"}, (), {"A": "$A"}),  # a loop stops
        ({"B": "x$UNKNOWN-y"}, (), {"B": "x-y"}),
        ({"B": "%UNKNOWN%"}, (), {"B": "%UNKNOWN%"}),
        ({"A": "cost 5%", "B": "$A"}, (), {"B": "cost 5%"}),
    ],
)
def test_expansion(values: dict[str, str], raw: tuple[str, ...], expected: dict[str, str]) -> None:
    result = expand_all(values, frozenset(raw))
    assert {k: result[k] for k in expected} == expected


def test_precedence_predefined_global_job_rule_then_run_variables() -> None:
    """GitLab: a job's variables beat global ones, a rule's beat the job's, the run's beat all."""
    spec = read(
        """
        variables:
          LEVEL: global
          ONLY_GLOBAL: g
          CI_COMMIT_REF_NAME: overridden
        j:
          script: x
          variables: {LEVEL: job, ONLY_JOB: j}
        k:
          script: x
          variables: {LEVEL: job}
          rules:
            - if: $LEVEL == "job"
              variables: {LEVEL: rule}
        r:
          script: x
          rules:
            - if: $LEVEL == "run"
        """,
        run_vars={"FROM_RUN": "1"},
    )
    assert dict(job(spec, "j").variables) == {
        "LEVEL": "job",
        "ONLY_GLOBAL": "g",
        "CI_COMMIT_REF_NAME": "overridden",
        "ONLY_JOB": "j",
    }
    assert dict(job(spec, "k").variables)["LEVEL"] == "rule"
    assert "r" not in [j.name for j in spec.jobs]
    with_run = read(
        "variables: {LEVEL: g}\nr:\n  script: x\n  rules: [{if: $LEVEL == 'run'}]\n",
        run_vars={"LEVEL": "run"},
    )
    assert [j.name for j in with_run.jobs] == ["r"]


def test_variable_forms_value_description_options_expand() -> None:
    spec = read(
        """
        variables:
          DEPLOY_ENV:
            value: staging
            description: Where to deploy
            options: [staging, production]
          RAW:
            value: "$DEPLOY_ENV"
            expand: false
          EMPTY:
        j:
          script: x
        """
    )
    j = job(spec, "j")
    assert dict(j.variables) == {"DEPLOY_ENV": "staging", "RAW": "$DEPLOY_ENV", "EMPTY": ""}
    assert j.raw_variables == ("RAW",)


def test_expansion_in_keywords_gitlab_expands() -> None:
    """artifacts:paths, cache:key and cache:paths see the job's variables expanded."""
    spec = read(
        """
        variables: {OUT: build/$CI_JOB_NAME}
        compile:
          script: x
          cache: {key: "$CI_COMMIT_REF_SLUG-deps", paths: ["$OUT/cache"]}
          artifacts: {paths: ["$OUT/bin", "${OUT}/lib"]}
        """
    )
    j = job(spec, "compile")
    assert j.artifacts is not None and j.artifacts.paths == (
        "build/compile/bin",
        "build/compile/lib",
    )
    assert j.cache[0].key == "main-deps"
    assert j.cache[0].paths == ("build/compile/cache",)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("variables: {A: true}\nj: {script: x}\n", ".alloy-ci.yml:1: variable 'A' must be"),
        ("variables: {A: {value: x, secret: 1}}\nj: {script: x}\n", "unknown key 'secret'"),
        ("variables: {A: {value: x, expand: 'no'}}\nj: {script: x}\n", "expand must be a bool"),
    ],
)
def test_bad_variables_are_refused(text: str, expected: str) -> None:
    with pytest.raises(PipelineError) as caught:
        read(text)
    assert expected in str(caught.value)
