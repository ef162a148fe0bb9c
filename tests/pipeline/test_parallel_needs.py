"""Fan-out and order: parallel, parallel:matrix naming and limits, needs graphs and their errors."""

from __future__ import annotations

import pytest

from tests.pipeline.support import error, job, names, read


def test_parallel_n_names_jobs_one_of_n() -> None:
    spec = read("test:\n  script: rspec\n  parallel: 3\n")
    assert names(spec) == ["test 1/3", "test 2/3", "test 3/3"]
    assert dict(job(spec, "test 2/3").variables) == {"CI_NODE_INDEX": "2", "CI_NODE_TOTAL": "3"}


MATRIX = """
deploystacks:
  stage: deploy
  script:
    - bin/deploy
  parallel:
    matrix:
      - PROVIDER: aws
        STACK:
          - monitoring
          - app1
          - app2
      - PROVIDER: [gcp, vultr]
        STACK: [data, processing]
"""


def test_matrix_naming_and_variables_follow_gitlabs_example() -> None:
    spec = read(MATRIX)
    assert names(spec) == [
        "deploystacks: [aws, monitoring]",
        "deploystacks: [aws, app1]",
        "deploystacks: [aws, app2]",
        "deploystacks: [gcp, data]",
        "deploystacks: [gcp, processing]",
        "deploystacks: [vultr, data]",
        "deploystacks: [vultr, processing]",
    ]
    variables = dict(job(spec, "deploystacks: [vultr, data]").variables)
    assert variables == {
        "PROVIDER": "vultr",
        "STACK": "data",
        "CI_NODE_INDEX": "6",
        "CI_NODE_TOTAL": "7",
    }


def test_matrix_variables_are_seen_by_rules() -> None:
    spec = read(
        """
        build:
          script: x
          parallel:
            matrix:
              - OS: [linux, windows]
          rules:
            - if: $OS == "linux"
        """
    )
    assert names(spec) == ["build: [linux]"]


def test_needs_on_a_parallel_job_needs_every_instance_or_the_matrix_selected() -> None:
    spec = read(
        MATRIX.replace("stage: deploy", "stage: build")
        + """
all:
  stage: deploy
  script: x
  needs: [deploystacks]
one:
  stage: deploy
  script: x
  needs:
    - job: deploystacks
      parallel:
        matrix:
          - PROVIDER: aws
            STACK: app1
by_name:
  stage: deploy
  script: x
  needs: ["deploystacks: [gcp, data]"]
"""
    )
    assert len(job(spec, "all").needs or ()) == 7
    assert job(spec, "one").needs == ("deploystacks: [aws, app1]",)
    assert job(spec, "by_name").needs == ("deploystacks: [gcp, data]",)


def test_needs_graph_artifacts_and_optional() -> None:
    spec = read(
        """
        linux:build: {stage: build, script: x}
        mac:build: {stage: build, script: x}
        lint: {stage: test, script: x, needs: []}
        linux:rspec:
          stage: test
          script: x
          needs: [linux:build]
        mac:rspec:
          stage: test
          script: x
          needs:
            - job: mac:build
              artifacts: false
            - job: not-here
              optional: true
        production:
          stage: deploy
          script: x
          needs: [linux:build, linux:rspec, mac:build, mac:rspec]
        """
    )
    assert job(spec, "lint").needs == ()
    assert job(spec, "linux:rspec").needs == ("linux:build",)
    assert job(spec, "mac:rspec").needs == ("mac:build",)
    assert job(spec, "mac:rspec").dependencies == ()
    assert job(spec, "linux:rspec").dependencies == ("linux:build",)
    assert job(spec, "production").needs == ("linux:build", "linux:rspec", "mac:build", "mac:rspec")


def test_a_need_on_a_job_that_rules_left_out_is_refused_unless_optional() -> None:
    text = "a:\n  script: x\n  rules: [{if: $NOPE}]\nb:\n  script: x\n  needs: [a]\n"
    assert error(text).startswith(".alloy-ci.yml:6: job 'b': needs: job 'a' is not in this")
    assert job(read(text.replace("[a]", "[{job: a, optional: true}]")), "b").needs == ()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "a: {script: x, needs: [b]}\nb: {script: x, needs: [a]}\n",
            ".alloy-ci.yml:1: job 'a': needs loop: a -> b -> a",
        ),
        ("a: {script: x, needs: [nope]}\n", ".alloy-ci.yml:1: job 'a': needs: unknown job 'nope'"),
        (
            "a:\n  stage: build\n  script: x\n  needs: [b]\nb: {stage: test, script: x}\n",
            ".alloy-ci.yml:4: job 'a': needs: job 'b' is in a later stage ('test')",
        ),
        (
            "a:\n  script: x\n  needs:\n    - pipeline: $PARENT\n      job: b\n",
            ".alloy-ci.yml:4: job 'a': needs:pipeline: other pipelines",
        ),
        ("a:\n  script: x\n  parallel: 201\n", ".alloy-ci.yml:3: job 'a': parallel must be"),
        (
            "a:\n  script: x\n  parallel:\n    matrix:\n      - A: [1,2,3,4,5,6,7,8,9,10]\n"
            "        B: [1,2,3,4,5,6,7,8,9,10]\n        C: [1,2,3]\n",
            ".alloy-ci.yml:4: job 'a': parallel:matrix makes more than 200 jobs",
        ),
        (
            "a:\n  script: x\n  parallel:\n    matrix: [{A: {b: c}}]\n",
            ".alloy-ci.yml:4: job 'a': parallel:matrix: 'A' must map",
        ),
        ("a:\n  script: x\n  retry: 3\n", ".alloy-ci.yml:3: job 'a': retry:max must be 0, 1 or 2"),
        (
            "a:\n  script: x\n  retry: {max: 1, when: [sometimes]}\n",
            ".alloy-ci.yml:3: job 'a': retry:when must name failures",
        ),
    ],
)
def test_bad_graphs_and_fan_outs_are_refused_at_their_line(text: str, expected: str) -> None:
    assert error(text).startswith(expected)


def test_retry_resource_group_interruptible_timeout() -> None:
    spec = read(
        """
        deploy:
          script: x
          retry: {max: 2, when: [runner_system_failure, script_failure], exit_codes: [137]}
          resource_group: production-$CI_COMMIT_REF_SLUG
          interruptible: true
          timeout: 1h 30m
        """
    )
    deploy = job(spec, "deploy")
    assert (deploy.retry, deploy.retry_when, deploy.retry_exit_codes) == (
        2,
        ("runner_system_failure", "script_failure"),
        (137,),
    )
    assert deploy.resource_group == "production-main"
    assert deploy.interruptible is True
    assert deploy.timeout == 5400


def test_matrix_expressions_map_matrix_jobs_one_to_one() -> None:
    """GitLab's `$[[ matrix.NAME ]]` in needs:parallel:matrix: each test needs its own build."""
    spec = read(
        """
        linux:build:
          stage: build
          script: x
          parallel:
            matrix:
              - PROVIDER: [aws, gcp]
                STACK: [monitoring, app1]
        linux:test:
          stage: test
          script: x
          parallel:
            matrix:
              - PROVIDER: [aws, gcp]
                STACK: [monitoring, app1]
          needs:
            - job: linux:build
              parallel:
                matrix:
                  - PROVIDER: ['$[[ matrix.PROVIDER ]]']
                    STACK: ['$[[ matrix.STACK ]]']
        """
    )
    assert job(spec, "linux:test: [gcp, app1]").needs == ("linux:build: [gcp, app1]",)
