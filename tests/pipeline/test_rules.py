"""Job selection as GitLab's reference describes it: rules, only/except, workflow, when."""

from __future__ import annotations

from pathlib import Path

import pytest

from alloy_runner.pipeline.repo import Repo
from tests.pipeline.support import commit, error, git, job, make_repo, names, read, repo_at


def on(ref: str = "main", *, tag: bool = False, source: str = "push", **kw: object) -> Repo:
    return Repo(root=Path.cwd(), ref=ref, is_tag=tag, source=source, **kw)  # type: ignore[arg-type]


RULES = """
docker-build:
  script: build
  rules:
    - if: $CI_PIPELINE_SOURCE == "merge_request_event"
      when: manual
      allow_failure: true
    - if: $CI_PIPELINE_SOURCE == "schedule"
      when: never
    - if: $CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH
    - if: $CI_COMMIT_TAG
      variables: {KIND: release}
"""


@pytest.mark.parametrize(
    ("repo", "expected"),
    [
        (on("main"), ("on_success", False)),
        (on("feature"), None),
        (on("main", source="merge_request_event"), ("manual", True)),
        (on("main", source="schedule"), None),
        (on("v1.0", tag=True), ("on_success", False)),
    ],
)
def test_rules_first_match_decides(repo: Repo, expected: tuple[str, bool] | None) -> None:
    """GitLab's docker-build example: the first matching rule decides, `never` excludes."""
    spec = read(RULES, repo)
    if expected is None:
        assert names(spec) == []
        return
    j = job(spec, "docker-build")
    assert (j.when, j.allow_failure) == expected


def test_a_rule_sets_variables_needs_and_start_in() -> None:
    spec = read(
        """
        build: {stage: build, script: b}
        lint: {stage: build, script: l}
        deploy:
          stage: deploy
          script: d
          needs: [build, lint]
          variables: {TARGET: staging}
          rules:
            - if: $CI_COMMIT_BRANCH == "main"
              variables: {TARGET: production}
              needs: [build]
              when: delayed
              start_in: 30 minutes
        """,
        on("main"),
    )
    deploy = job(spec, "deploy")
    assert dict(deploy.variables)["TARGET"] == "production"
    assert deploy.needs == ("build",)
    assert (deploy.when, deploy.start_in) == ("delayed", 1800)


def test_rules_when_manual_blocks_unless_allowed_to_fail() -> None:
    spec = read("j:\n  script: x\n  rules:\n    - when: manual\n")
    assert (job(spec, "j").when, job(spec, "j").allow_failure) == ("manual", False)


def test_exists_globs_the_repository(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "p", {"Dockerfile": "FROM x", "src/app/main.go": "package main"})
    text = """
    docker: {script: x, rules: [{exists: [Dockerfile]}]}
    go: {script: x, rules: [{exists: ["**/*.go"]}]}
    node: {script: x, rules: [{exists: [package.json, "**/*.js"]}]}
    braces: {script: x, rules: [{exists: ["src/{lib,app}/*.go"]}]}
    """
    assert names(read(text, repo_at(root))) == ["docker", "go", "braces"]


def test_changes_compare_with_the_parent_commit(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "p", {"README.md": "x", "docs/a.md": "a"})
    commit(root, {"docs/b.md": "b"}, "docs only")
    text = """
    docs: {script: x, rules: [{changes: ["docs/**/*"]}]}
    code: {script: x, rules: [{changes: {paths: ["src/**/*"]}}]}
    compare: {script: x, rules: [{changes: {paths: [README.md], compare_to: HEAD~1}}]}
    """
    assert names(read(text, repo_at(root))) == ["docs"]
    # Without a push to compare (a scheduled pipeline), GitLab takes changes as true;
    # compare_to still compares.
    assert names(read(text, repo_at(root, source="schedule"))) == ["docs", "code"]


def test_changes_on_a_first_commit_are_true(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "p", {"README.md": "x"})
    assert names(read("c: {script: x, rules: [{changes: [src/*]}]}\n", repo_at(root))) == ["c"]


@pytest.mark.parametrize(
    ("only", "repo", "kept"),
    [
        ("[main]", on("main"), True),
        ("[main]", on("dev"), False),
        ("[branches]", on("dev"), True),
        ("[branches]", on("v1", tag=True), False),
        ("[tags]", on("v1", tag=True), True),
        ("[/^release-.*$/]", on("release-1.2"), True),
        ("[/^release-.*$/]", on("hotfix"), False),
        ("[merge_requests]", on("dev", source="merge_request_event"), True),
        ("[schedules]", on("main"), False),
        ("[schedules]", on("main", source="schedule"), True),
        ("[main@local/project]", on("main"), True),
        ("[main@other/project]", on("main"), False),
        ("{refs: [main], variables: [$RELEASE]}", on("main"), False),
        ("{variables: ['$CI_COMMIT_REF_NAME == \"main\"']}", on("main"), True),
    ],
)
def test_only(only: str, repo: Repo, kept: bool) -> None:
    spec = read(f"j:\n  script: x\n  only: {only}\n", repo)
    assert (names(spec) == ["j"]) is kept


@pytest.mark.parametrize(
    ("except_", "repo", "kept"),
    [
        ("[main]", on("main"), False),
        ("[main]", on("dev"), True),
        ("[tags]", on("v1", tag=True), False),
        ("{refs: [dev], variables: [$CI_COMMIT_TAG]}", on("main"), True),
        ("{refs: [main], variables: [$NOPE]}", on("main"), False),  # any key excludes
    ],
)
def test_except(except_: str, repo: Repo, kept: bool) -> None:
    spec = read(f"j:\n  script: x\n  except: {except_}\n", repo)
    assert (names(spec) == ["j"]) is kept


def test_jobs_without_rules_or_only_do_not_run_in_merge_request_pipelines() -> None:
    """GitLab's default is `only: [branches, tags]`."""
    spec = read(
        "j: {script: x}\nmr: {script: x, only: [merge_requests]}\n",
        on("dev", source="merge_request_event"),
    )
    assert names(spec) == ["mr"]


WORKFLOW = """
workflow:
  name: 'Pipeline for $CI_COMMIT_REF_NAME'
  rules:
    - if: $CI_COMMIT_TITLE =~ /-draft$/
      when: never
    - if: $CI_PIPELINE_SOURCE == "merge_request_event"
    - if: $CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH
      variables: {DEPLOY: "true"}
j:
  script: x
  rules:
    - if: $DEPLOY
"""


def test_workflow_rules_decide_whether_there_is_a_pipeline(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "p", {"README": "x"})
    spec = read(WORKFLOW, repo_at(root))
    assert names(spec) == ["j"] and spec.name == "Pipeline for main"
    assert ("CI_PIPELINE_NAME", "Pipeline for main") in spec.variables
    git(root, "checkout", "-q", "-b", "dev")
    assert read(WORKFLOW, repo_at(root)).filtered
    commit(root, {}, "wip-draft")
    git(root, "checkout", "-q", "main")
    git(root, "merge", "-q", "--ff-only", "dev")
    assert read(WORKFLOW, repo_at(root)).filtered


@pytest.mark.parametrize(
    ("when", "kept"),
    [("on_success", True), ("always", True), ("on_failure", True), ("never", False)],
)
def test_job_level_when(when: str, kept: bool) -> None:
    assert (names(read(f"j: {{script: x, when: {when}}}\n")) == ["j"]) is kept


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("j:\n  script: x\n  rules:\n    - if: $A = 'x'\n", ".alloy-ci.yml:4: job 'j': if"),
        ("j:\n  script: x\n  rules:\n    - iff: $A\n", ".alloy-ci.yml:4: job 'j': rules: unknown"),
        ("j:\n  script: x\n  rules:\n    - when: later\n", ".alloy-ci.yml:4: job 'j': rules:when"),
        ("j:\n  script: x\n  when: delayed\n", ".alloy-ci.yml:3: job 'j': when: delayed needs"),
        ("j:\n  script: x\n  start_in: 1h\n", ".alloy-ci.yml:3: job 'j': start_in needs"),
        ("j:\n  script: x\n  when: delayed\n  start_in: 2 weeks\n", ".alloy-ci.yml:4: job 'j'"),
        ("workflow:\n  rules:\n    - if: ($A\nj: {script: x}\n", ".alloy-ci.yml:3: workflow:if"),
        ("j:\n  script: x\n  only: {refs: [/(/]}\n", ".alloy-ci.yml:3: job 'j': only:refs"),
        (
            "workflow:\n  auto_cancel:\n    on_job_failure: all\nj: {script: x}\n",
            ".alloy-ci.yml:3: workflow:auto_cancel:on_job_failure: only none",
        ),
        (
            "workflow:\n  auto_cancel:\n    on_new_commit: always\nj: {script: x}\n",
            ".alloy-ci.yml:3: workflow:auto_cancel:on_new_commit must be one of",
        ),
    ],
)
def test_rule_syntax_errors_name_the_line(text: str, expected: str) -> None:
    assert error(text).startswith(expected)


def test_asking_for_a_job_the_rules_left_out_says_so() -> None:
    from alloy_runner.exceptions import PipelineError
    from alloy_runner.pipeline.submit import select

    spec = read("deploy:\n  script: x\n  rules: [{if: $CI_COMMIT_TAG}]\nb: {script: y}\n")
    assert spec.left_out == ("deploy",)
    with pytest.raises(PipelineError) as caught:
        select(spec, ["deploy"])
    assert str(caught.value) == (
        "job 'deploy' is not in the pipeline for main (push): its rules, only/except or"
        " when: never leave it out"
    )
