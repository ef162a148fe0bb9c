"""Composition: include (local), its merge order, !reference, default:, type:, dependencies:."""

from __future__ import annotations

from pathlib import Path

import pytest

from alloy_runner.exceptions import PipelineError
from alloy_runner.pipeline.ci_yaml import load_pipeline
from alloy_runner.pipeline.repo import Repo
from tests.pipeline.support import error, job, names, read


def project(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path / ".alloy-ci.yml"


def test_include_merge_order_is_gitlabs(tmp_path: Path) -> None:
    """GitLab's example: the including file overrides the included one, key by key (deep)."""
    main = project(
        tmp_path,
        {
            ".alloy-ci.yml": "include: 'autodevops-template.yml'\n\n"
            "variables:\n  POSTGRES_USER: root\n  POSTGRES_DB: main\n\n"
            "production:\n  environment:\n    url: https://example.com\n",
            "autodevops-template.yml": "variables:\n  POSTGRES_USER: user\n"
            "  POSTGRES_PASSWORD: testing_password\n  POSTGRES_DB: $CI_ENVIRONMENT_SLUG\n\n"
            "production:\n  stage: deploy\n  script:\n    - install_dependencies\n"
            "    - deploy\n  environment:\n    name: production\n    url: https://$CI_PROJECT_PATH_SLUG.example.com\n"
            "  only:\n    - main\n",
        },
    )
    spec = load_pipeline(main)
    production = job(spec, "production")
    assert production.stage == "deploy"
    assert production.script == ("install_dependencies", "deploy")
    assert dict(production.variables) == {
        "POSTGRES_USER": "root",
        "POSTGRES_PASSWORD": "testing_password",
        "POSTGRES_DB": "main",
    }


def test_includes_in_every_form_nested_with_rules_and_later_wins(tmp_path: Path) -> None:
    main = project(
        tmp_path,
        {
            ".alloy-ci.yml": "include:\n  - ci/a.yml\n  - local: /ci/b.yml\n"
            "  - local: ci/never.yml\n    rules:\n      - if: $CI_COMMIT_BRANCH == 'other'\n"
            "  - local: ci/wild/*.yml\n"
            "own: {script: own}\n",
            "ci/a.yml": "include: ci/nested.yml\nshared: {script: from-a}\na: {script: a}\n",
            "ci/nested.yml": "nested: {script: nested}\nshared: {script: from-nested}\n",
            "ci/b.yml": "shared: {script: from-b}\n",
            "ci/never.yml": "never: {script: never}\n",
            "ci/wild/x.yml": "x: {script: x}\n",
            "ci/wild/y.yaml": "y: {script: y}\n",
        },
    )
    spec = load_pipeline(main)
    assert sorted(names(spec)) == ["a", "nested", "own", "shared", "x"]
    assert job(spec, "shared").script == ("from-b",)


@pytest.mark.parametrize(
    ("include", "expected"),
    [
        (
            "include:\n  - template: Auto-DevOps.gitlab-ci.yml\n",
            ".alloy-ci.yml:2: include: template",
        ),
        ("include:\n  - project: g/p\n    file: /x.yml\n", ".alloy-ci.yml:2: include: project"),
        ("include: 'https://example.com/ci.yml'\n", ".alloy-ci.yml:1: include: remote"),
        ("include:\n  - remote: https://example.com/ci.yml\n", ".alloy-ci.yml:2: include: remote"),
        (
            "include:\n  - component: $CI_SERVER_FQDN/a/b@1.0\n",
            ".alloy-ci.yml:2: include: component",
        ),
        ("include: missing.yml\n", ".alloy-ci.yml:1: include: local file 'missing.yml' does not"),
        (
            "include: ../outside.yml\n",
            ".alloy-ci.yml:1: include: local '../outside.yml' is outside",
        ),
        ("include:\n  - local: a.yml\n    remote: b\n", ".alloy-ci.yml:2: include: name exactly"),
    ],
)
def test_includes_that_cannot_be_read_here_are_refused(
    tmp_path: Path, include: str, expected: str
) -> None:
    main = project(tmp_path / "p", {".alloy-ci.yml": include + "j: {script: x}\n"})
    with pytest.raises(PipelineError) as caught:
        load_pipeline(main)
    assert str(caught.value).startswith(str(main) + expected.removeprefix(".alloy-ci.yml"))


def test_an_error_in_an_included_file_names_that_file(tmp_path: Path) -> None:
    main = project(
        tmp_path,
        {
            ".alloy-ci.yml": "include: ci/jobs.yml\n",
            "ci/jobs.yml": "\nj:\n  script: x\n  stage: nope\n",
        },
    )
    with pytest.raises(PipelineError, match=r"^ci/jobs.yml:4: job 'j': stage 'nope'"):
        load_pipeline(main)


def test_reference_tags() -> None:
    """GitLab's !reference examples: script sections, rules, variables, nested references."""
    spec = read(
        """
        .setup:
          script:
            - echo creating environment
        .teardown:
          after_script:
            - echo deleting environment
        .vars:
          variables:
            URL: "http://my-url.internal"
        .rules:
          rules:
            - if: $CI_COMMIT_BRANCH == "main"
        .nested:
          script:
            - !reference [.setup, script]
            - echo nested
        test:
          variables:
            URL: !reference [.vars, variables, URL]
          script:
            - !reference [.setup, script]
            - echo running my own command
            - !reference [.nested, script]
          after_script:
            - !reference [.teardown, after_script]
          rules:
            - !reference [.rules, rules]
        """
    )
    test = job(spec, "test")
    assert test.script == (
        "echo creating environment",
        "echo running my own command",
        "echo creating environment",
        "echo nested",
    )
    assert test.after_script == ("echo deleting environment",)
    assert dict(test.variables) == {"URL": "http://my-url.internal"}


def test_reference_errors_name_the_line() -> None:
    assert error("j:\n  script:\n    - !reference [.none, script]\n").startswith(
        ".alloy-ci.yml:3: !reference [.none, script]: '.none' not found"
    )
    assert error("j:\n  script: !reference .x\n").startswith(".alloy-ci.yml:2:11: !reference takes")


def test_default_keywords_apply_unless_the_job_has_its_own() -> None:
    spec = read(
        """
        default:
          before_script: [setup]
          after_script: [cleanup]
          retry: 2
          timeout: 10m
          interruptible: true
          image: ruby:3
        a: {script: x}
        b:
          script: x
          retry: {max: 1, when: [script_failure]}
          before_script: []
        c:
          script: x
          inherit: {default: [timeout]}
        """
    )
    a, b, c = job(spec, "a"), job(spec, "b"), job(spec, "c")
    assert (a.script, a.after_script, a.retry, a.timeout, a.interruptible) == (
        ("setup", "x"),
        ("cleanup",),
        2,
        600,
        True,
    )
    assert (b.script, b.retry, b.retry_when) == (("x",), 1, ("script_failure",))
    assert (c.script, c.retry, c.timeout, c.interruptible) == (("x",), 0, 600, False)


def test_inherit_variables() -> None:
    spec = read(
        "variables: {A: a, B: b}\n"
        "none: {script: x, inherit: {variables: false}}\n"
        "some: {script: x, inherit: {variables: [B]}}\n"
    )
    assert dict(job(spec, "none").variables) == {}
    assert dict(job(spec, "some").variables) == {"B": "b"}


def test_type_and_types_are_old_names_of_stage_and_stages() -> None:
    spec = read(
        "types: [compile, check]\nc: {type: compile, script: x}\nk: {type: check, script: y}\n"
    )
    assert spec.stages == (".pre", "compile", "check", ".post")
    assert [(j.name, j.stage) for j in spec.jobs] == [("c", "compile"), ("k", "check")]


def test_a_bare_dependencies_key_means_every_earlier_job() -> None:
    spec = read("b: {stage: build, script: x}\nt:\n  script: y\n  dependencies:\n")
    assert job(spec, "t").dependencies is None


def test_include_only_file_names_what_it_included(tmp_path: Path) -> None:
    main = project(
        tmp_path,
        {
            ".alloy-ci.yml": "include: ci/templates.yml\n",
            "ci/templates.yml": ".hidden: {script: x}\n",
        },
    )
    with pytest.raises(PipelineError, match=r"no jobs: .* \(it includes ci/templates.yml\)"):
        load_pipeline(main, Repo(root=tmp_path))


def test_spec_inputs_are_refused() -> None:
    assert error("spec:\n  inputs:\n    x: {}\nj: {script: x}\n").startswith(
        ".alloy-ci.yml:1: spec (inputs for included files) is not supported here"
    )
    assert error("spec:\n  inputs: {}\n---\nj: {script: x}\n").startswith(".alloy-ci.yml:3:")
