"""The `.alloy-ci.yml` reader: GitLab CI YAML in, a pipeline plan (or one clear line) out."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from alloy_runner.build.image import Image, Service
from alloy_runner.build.job import Artifact, ArtifactWhen, Cache, CachePolicy, Step
from alloy_runner.exceptions import AlloyRunnerError, PipelineError
from alloy_runner.pipeline.ci_yaml import (
    JobSpec,
    PipelineSpec,
    job_steps,
    load_pipeline,
    parse_duration,
    parse_pipeline,
)


def parse(text: str, source: str = ".alloy-ci.yml") -> PipelineSpec:
    return parse_pipeline(textwrap.dedent(text).lstrip("\n"), source)


def error_of(text: str) -> str:
    with pytest.raises(PipelineError) as caught:
        parse(text)
    message = str(caught.value)
    assert "\n" not in message
    return message


def job(spec: PipelineSpec, name: str) -> JobSpec:
    return next(j for j in spec.jobs if j.name == name)


REALISTIC = """
stages: [lint, build, test, deploy]

variables:
  PIP_CACHE_DIR: "$CI_PROJECT_DIR/.cache/pip"
  PYTHON: "3.12"
  RETRIES: 3

default:
  before_script:
    - python -V
    - pip install -e .[dev]
  after_script: [echo done]
  timeout: 30m
  cache:
    key: pip
    paths: [.cache/pip]

.install: &install
  - pip install build
  - pip install twine

.tests:
  stage: test
  variables:
    PYTEST_ADDOPTS: -q
  script:
    - pytest
  artifacts:
    when: always
    paths: [report.xml]
    expire_in: 1 week

ruff:
  stage: lint
  script: ruff check .

wheel:
  stage: build
  script:
    - *install
    - python -m build
  artifacts:
    name: dist
    paths: [dist/]

unit:
  extends: .tests
  variables:
    PYTEST_ADDOPTS: -q -m "not slow"
    PYTHON: "3.11"

slow:
  extends: .tests
  timeout: 2h
  allow_failure: true
  script:
    - pytest -m slow

publish:
  stage: deploy
  needs: [wheel]
  cache: []
  after_script: []
  script:
    - twine upload dist/*
"""


def test_realistic_pipeline_reads_into_the_plan_gitlab_would_run() -> None:
    """Stages, default, global variables, anchors and extends combine as GitLab combines them."""
    spec = parse(REALISTIC)

    assert spec.stages == (".pre", "lint", "build", "test", "deploy", ".post")
    assert [j.name for j in spec.jobs] == ["ruff", "wheel", "unit", "slow", "publish"]
    assert spec.warnings == ()
    wheel = job(spec, "wheel")
    assert wheel.script == (
        "python -V",
        "pip install -e .[dev]",
        "pip install build",
        "pip install twine",
        "python -m build",
    )
    assert wheel.after_script == ("echo done",)
    assert wheel.timeout == 1800
    assert wheel.artifacts == Artifact(name="dist", paths=("dist/",))
    assert wheel.cache == (Cache(key="pip", paths=(".cache/pip",)),)
    unit = job(spec, "unit")
    assert unit.stage == "test"
    assert unit.script[-1] == "pytest"
    assert dict(unit.variables) == {
        "PIP_CACHE_DIR": "$CI_PROJECT_DIR/.cache/pip",
        "PYTHON": "3.11",
        "RETRIES": "3",
        "PYTEST_ADDOPTS": '-q -m "not slow"',
    }
    assert unit.artifacts == Artifact(
        paths=("report.xml",), when=ArtifactWhen.ALWAYS, expire_in="1 week"
    )
    assert unit.dependencies is None
    slow = job(spec, "slow")
    assert slow.script[-1] == "pytest -m slow"
    assert (slow.timeout, slow.allow_failure) == (7200, True)
    publish = job(spec, "publish")
    assert publish.needs == ("wheel",)
    assert publish.dependencies == ("wheel",)
    assert publish.cache == ()
    assert publish.after_script == ()


def test_jobs_come_out_in_stage_order_then_file_order() -> None:
    """A job listed early but in a late stage moves after the earlier stages' jobs."""
    spec = parse(
        """
        stages: [one, two, three]
        c3: {stage: three, script: x}
        a2: {stage: two, script: x}
        b1: {stage: one, script: x}
        d2: {stage: two, script: x}
        e1: {stage: one, script: x}
        """
    )
    assert [j.name for j in spec.jobs] == ["b1", "e1", "a2", "d2", "c3"]


def test_default_stages_apply_when_stages_is_absent() -> None:
    """Without `stages`, GitLab's .pre, build, test, deploy, .post apply; `test` is the default."""
    spec = parse(
        """
        late: {stage: .post, script: x}
        check: {script: x}
        early: {stage: .pre, script: x}
        """
    )
    assert spec.stages == (".pre", "build", "test", "deploy", ".post")
    assert [(j.name, j.stage) for j in spec.jobs] == [
        ("early", ".pre"),
        ("check", "test"),
        ("late", ".post"),
    ]


def test_declared_stages_are_wrapped_in_pre_and_post() -> None:
    """Declared stages always get .pre before and .post after them, once."""
    spec = parse("stages: [.pre, a, b]\nj: {stage: a, script: x}\n")
    assert spec.stages == (".pre", "a", "b", ".post")


def test_job_variables_win_over_global_ones_and_keep_their_order() -> None:
    """Global variables come first; a job's own value replaces a global one in place."""
    spec = parse(
        """
        variables:
          A: global-a
          B: 2
          C: {value: c, description: shown in the run form}
          D: 1.5
        j:
          script: x
          variables:
            Z: z
            A: job-a
        """
    )
    assert job(spec, "j").variables == (
        ("A", "job-a"),
        ("B", "2"),
        ("C", "c"),
        ("D", "1.5"),
        ("Z", "z"),
    )


def test_extends_merges_hashes_and_replaces_everything_else() -> None:
    """`extends` deep-merges templates in order: hashes merge, lists and scalars replace."""
    spec = parse(
        """
        .a:
          variables: {X: a, Y: a}
          script: [from-a]
          artifacts: {paths: [a/], when: always}
        .b:
          extends: .a
          variables: {Y: b}
          stage: build
        j:
          extends: [.b]
          variables: {Z: j}
          artifacts: {paths: [j/]}
        """
    )
    j = job(spec, "j")
    assert dict(j.variables) == {"X": "a", "Y": "b", "Z": "j"}
    assert j.script == ("from-a",)
    assert j.stage == "build"
    assert j.artifacts == Artifact(paths=("j/",), when=ArtifactWhen.ALWAYS)


def test_a_job_key_replaces_the_default_one_whole() -> None:
    """`default:` values are not merged into a job's: the job's cache replaces the default cache."""
    spec = parse(
        """
        default:
          cache: {key: k, paths: [a], policy: pull}
        j:
          script: x
          cache: {paths: [b]}
        """
    )
    assert job(spec, "j").cache == (Cache(key="default", paths=("b",)),)


def test_hidden_jobs_are_templates_not_jobs() -> None:
    """A key starting with '.' is never a job, whatever it holds."""
    spec = parse(
        """
        .template: {script: x}
        .script_lines: &lines [a, b]
        real: {script: *lines}
        """
    )
    assert [j.name for j in spec.jobs] == ["real"]
    assert spec.jobs[0].script == ("a", "b")


def test_merge_keys_bring_in_an_anchored_mapping() -> None:
    """`<<: *anchor` works, and explicit keys win over merged ones."""
    spec = parse(
        """
        .base: &base {stage: build, script: [base]}
        j:
          <<: *base
          script: [own]
        """
    )
    assert (job(spec, "j").stage, job(spec, "j").script) == ("build", ("own",))


DURATIONS = [
    (3600, 3600),
    ("3600", 3600),
    ("30s", 30),
    ("1h", 3600),
    ("1h 30m", 5400),
    ("1h30m", 5400),
    ("90 minutes", 5400),
    ("2 hours 5 min", 7500),
    ("1 day", 86400),
    ("1 week", 604800),
    ("2 weeks and 1 day", 15 * 86400),
    ("1 hour, 2 mins, 3 secs", 3723),
    ("1.5h", 5400),
    ("1 month", 30 * 86400),
    ("1:30:00", 5400),
    ("2:05", 125),
    (" 10 Minutes ", 600),
    (0, 0),
]


@pytest.mark.parametrize(("text", "seconds"), DURATIONS)
def test_durations_read_as_gitlab_reads_them(text: str | int, seconds: int) -> None:
    """Each GitLab duration form gives its number of seconds."""
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text", ["", "   ", "soon", "1x", "1 parsec", "-5", -5, "1h -5m", "h", "1..5h", True, "1:75"]
)
def test_nonsense_durations_raise_pipeline_error(text: str | int) -> None:
    """Anything that is not a GitLab duration raises PipelineError (a one-line AlloyRunnerError)."""
    with pytest.raises(AlloyRunnerError, match="invalid duration"):
        parse_duration(text)


def test_job_timeout_errors_name_the_job_and_line() -> None:
    """A bad `timeout:` fails at its line, naming the job and the duration."""
    message = error_of("j:\n  script: x\n  timeout: eventually\n")
    assert message.startswith(".alloy-ci.yml:3: job 'j': timeout: invalid duration 'eventually'")


def test_artifacts_take_every_supported_key() -> None:
    """paths, exclude, name, when, expire_in and untracked reach the Artifact."""
    spec = parse(
        """
        j:
          script: x
          artifacts:
            name: "$CI_JOB_NAME"
            paths: [out/, logs/]
            exclude: [out/*.tmp]
            when: on_failure
            expire_in: 2 days
            untracked: true
        """
    )
    assert job(spec, "j").artifacts == Artifact(
        name="j",  # GitLab expands artifacts:name
        paths=("out/", "logs/"),
        exclude=("out/*.tmp",),
        untracked=True,
        when=ArtifactWhen.ON_FAILURE,
        expire_in="2 days",
    )


def test_artifacts_without_paths_are_no_artifacts() -> None:
    """Artifacts holding only reports archive nothing: the job has none, and reports are warned."""
    spec = parse("j:\n  script: x\n  artifacts:\n    reports: {junit: report.xml}\n")
    assert job(spec, "j").artifacts is None
    assert spec.warnings == (
        ".alloy-ci.yml:4: job 'j': key 'artifacts:reports' is not supported and was ignored",
    )


def test_cache_may_be_a_mapping_or_a_list_of_mappings() -> None:
    """Each cache shape gives Cache objects with GitLab's defaults filled in."""
    single = parse("j:\n  script: x\n  cache: {paths: [a], policy: pull, untracked: true}\n")
    assert job(single, "j").cache == (
        Cache(key="default", paths=("a",), untracked=True, policy=CachePolicy.PULL),
    )
    several = parse(
        """
        j:
          script: x
          cache:
            - {key: gems, paths: [vendor/], when: always}
            - {key: 42, paths: [node_modules/], policy: push}
        """
    )
    assert job(several, "j").cache == (
        Cache(key="gems", paths=("vendor/",), when=ArtifactWhen.ALWAYS),
        Cache(key="42", paths=("node_modules/",), policy=CachePolicy.PUSH),
    )


def test_cache_key_files_is_reported_and_falls_back_to_a_fixed_key() -> None:
    """`key: {files: ...}` cannot be computed here: it is warned, with the key used instead."""
    spec = parse(
        """
        j:
          script: x
          cache:
            key:
              files: [Gemfile.lock]
              prefix: gems
            paths: [vendor/]
        """
    )
    assert job(spec, "j").cache == (Cache(key="gems-default", paths=("vendor/",)),)
    assert spec.warnings == (
        ".alloy-ci.yml:4: job 'j': key 'cache:key:files' is not supported and was ignored"
        " (the key is 'gems-default')",
    )


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("cache: {paths: [a], policy: sometimes}", "cache:policy must be one of pull-push"),
        ("cache: [paths]", "cache must be a mapping or a list of them"),
        ("artifacts: [dist/]", "artifacts must be a mapping, not a list"),
        ("artifacts: {paths: dist/}", "artifacts:paths must be a list of strings"),
        ("artifacts: {paths: [a], expire_in: someday}", "artifacts:expire_in: invalid duration"),
        ("artifacts: {paths: [a], untracked: maybe}", "artifacts:untracked must be true or false"),
    ],
)
def test_malformed_artifacts_and_cache_fail_at_their_line(body: str, expected: str) -> None:
    """A cache or artifacts value of the wrong shape fails, naming job, key and line."""
    message = error_of(f"j:\n  script: x\n  {body}\n")
    assert message.startswith(".alloy-ci.yml:3: job 'j': ")
    assert expected in message


def test_dependencies_default_to_every_earlier_stage() -> None:
    """Without `dependencies` or `needs`, both are None: all earlier stages' artifacts."""
    spec = parse("b: {stage: build, script: x}\nt: {stage: test, script: x}\n")
    assert (job(spec, "t").dependencies, job(spec, "t").needs) == (None, None)


def test_needs_name_jobs_and_choose_the_artifacts_downloaded() -> None:
    """`needs` takes names or {job, artifacts}; without `dependencies`, they pick the artifacts."""
    spec = parse(
        """
        a: {stage: build, script: x}
        b: {stage: build, script: x}
        t:
          script: x
          needs: [a, {job: b, artifacts: false}, {job: gone, optional: true}]
        u:
          script: x
          needs: []
        v:
          script: x
          needs: [a, b]
          dependencies: [b]
        """
    )
    assert (job(spec, "t").needs, job(spec, "t").dependencies) == (("a", "b"), ("a",))
    assert (job(spec, "u").needs, job(spec, "u").dependencies) == ((), ())
    assert (job(spec, "v").needs, job(spec, "v").dependencies) == (("a", "b"), ("b",))


def test_needs_may_name_a_job_of_the_same_stage() -> None:
    """GitLab lets a job need another of its own stage; that job's artifacts are downloaded."""
    spec = parse("a: {script: x}\nb: {script: x, needs: [a]}\n")
    assert job(spec, "b").dependencies == ("a",)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "a:\n  script: x\n  dependencies: [nope]\n",
            ".alloy-ci.yml:3: job 'a': dependencies: unknown job 'nope'",
        ),
        (
            "a:\n  script: x\n  needs: [.hidden]\n.hidden: {script: x}\n",
            ".alloy-ci.yml:3: job 'a': needs: unknown job '.hidden'",
        ),
        (
            "a:\n  stage: build\n  script: x\n  needs: [b]\nb: {script: x}\n",
            ".alloy-ci.yml:4: job 'a': needs: job 'b' is in a later stage ('test')",
        ),
        (
            "a:\n  stage: build\n  script: x\n  dependencies: [b]\nb: {script: x}\n",
            ".alloy-ci.yml:4: job 'a': dependencies: job 'b' is in a later stage ('test')",
        ),
        (
            "a: {script: x}\nb:\n  script: x\n  dependencies: [a]\n",
            ".alloy-ci.yml:4: job 'b': dependencies: job 'a' is in the same stage",
        ),
        (
            "a: {stage: build, script: x}\nb:\n  script: x\n  needs: []\n  dependencies: [a]\n",
            ".alloy-ci.yml:5: job 'b': dependencies: job 'a' must also be in needs",
        ),
        (
            "a:\n  script: x\n  needs: [b]\nb:\n  script: x\n  needs: [a]\n",
            ".alloy-ci.yml:3: job 'a': needs loop: a -> b -> a",
        ),
    ],
)
def test_dependencies_and_needs_on_unknown_or_later_jobs_fail(text: str, expected: str) -> None:
    """needs/dependencies naming an unknown job, a later one, or looping fail at their line."""
    assert error_of(text) == expected


def test_keys_without_effect_are_warned_once_with_their_lines() -> None:
    """A key that changes nothing here gives one warning (its first line), however often used."""
    spec = parse(
        """
        default:
          image: python:3.12
          interruptible: true
        .tmpl:
          tags: [docker]
        j:
          extends: .tmpl
          script: x
          services: [postgres]
          coverage: '/TOTAL.*/'
        k:
          script: x
          tags: [shell]
          environment: production
        """,
        source="ci/pipeline.yml",
    )
    assert spec.warnings == (
        "ci/pipeline.yml:5: job 'j': key 'tags' is not supported and was ignored",
        "ci/pipeline.yml:10: job 'j': key 'coverage' is not supported and was ignored",
        "ci/pipeline.yml:14: job 'k': key 'environment' is not supported and was ignored",
    )
    assert job(spec, "j").interruptible is True
    assert job(spec, "j").image == Image("python:3.12")  # image and services are carried
    assert job(spec, "j").services == (Service("postgres"),)
    assert job(spec, "k").image == Image("python:3.12")  # from default:


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("j: {script: x, trigger: child.yml}\n", "job 'j': trigger (child and multi-project"),
        ("j: {script: x, secrets: {}}\n", "job 'j': secrets (secrets from external"),
        ("j: {script: x, scirpt: y}\n", "job 'j': unknown key 'scirpt'"),
        ("j: {script: x, rules: [], only: [main]}\n", "job 'j': rules cannot be used with only"),
        ("default: {stage: build}\nj: {script: x}\n", "default: unknown key 'stage'"),
    ],
)
def test_keys_that_would_change_the_job_are_refused(text: str, expected: str) -> None:
    """What would change which jobs run, or what they run, is refused rather than ignored."""
    message = error_of(text)
    assert message.startswith(".alloy-ci.yml:1: ") and expected in message


def test_allow_failure_exit_codes_are_kept() -> None:
    """`allow_failure: exit_codes` makes those codes allowed failures (judged by the spool)."""
    spec = parse("j:\n  script: x\n  allow_failure:\n    exit_codes: [137, 255]\n")
    assert job(spec, "j").allow_failure is False
    assert job(spec, "j").allow_failure_exit_codes == (137, 255)


def test_job_level_manual_jobs_may_fail() -> None:
    """GitLab: a job-level `when: manual` job defaults to allow_failure: true."""
    spec = parse("deploy:\n  script: x\n  when: manual\n")
    assert job(spec, "deploy").when == "manual"
    assert job(spec, "deploy").allow_failure is True
    assert spec.warnings == ()


def test_an_unknown_when_fails() -> None:
    """`when:` outside GitLab's values is an error, not a guess."""
    assert error_of("j:\n  script: x\n  when: sometimes\n") == (
        ".alloy-ci.yml:3: job 'j': when must be one of on_success, on_failure, always,"
        " manual, delayed, never"
    )


def test_a_yaml_syntax_error_names_file_line_and_column() -> None:
    """A YAML syntax error gives the parser's problem at FILE:LINE:COLUMN, on one line."""
    message = error_of("j:\n  script: [echo\nk: 1\n")
    assert message.startswith(".alloy-ci.yml:3:2: ")
    assert "expected ',' or ']'" in message


def test_an_undefined_alias_is_a_yaml_error_with_its_position() -> None:
    """An alias to an anchor that does not exist points at the alias."""
    assert error_of("j:\n  script: *nowhere\n").startswith(".alloy-ci.yml:2:11: found undefined")


def test_a_job_without_script_fails_naming_the_job_and_its_line() -> None:
    """`script` is required: its absence fails at the job's line."""
    message = error_of("ok: {script: x}\n\nbroken:\n  stage: test\n")
    assert message == ".alloy-ci.yml:3: job 'broken' has no script"


def test_a_job_in_an_unknown_stage_fails_at_its_stage_line() -> None:
    """A stage missing from `stages` fails, naming the job, the line and the stages there are."""
    message = error_of("stages: [build]\nj:\n  script: x\n  stage: tset\n")
    assert message == ".alloy-ci.yml:4: job 'j': stage 'tset' is not in stages (.pre, build, .post)"


def test_the_default_stage_must_exist_too() -> None:
    """A job without `stage` is in `test`, which declared stages may lack."""
    message = error_of("stages: [build]\nj:\n  script: x\n")
    assert message == ".alloy-ci.yml:2: job 'j': stage 'test' is not in stages (.pre, build, .post)"


def test_scripts_flatten_one_level_of_nested_lists() -> None:
    """Nested lists (from anchors) are flattened once, as GitLab does."""
    spec = parse("j:\n  before_script: b\n  script: [[a1, a2], c, [d]]\n")
    assert job(spec, "j").script == ("b", "a1", "a2", "c", "d")


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("\n    - echo a: b", ".alloy-ci.yml:3: job 'j': script holds a mapping, not a string"),
        ("[[[[[[[[[[[[deep]]]]]]]]]]]]", ".alloy-ci.yml:2: job 'j': script holds a list, not a"),
        ("[42]", ".alloy-ci.yml:2: job 'j': script holds 42, not a string"),
        ("{a: b}", ".alloy-ci.yml:2: job 'j': script must be a string or a list of strings"),
        ("[]", ".alloy-ci.yml:2: job 'j': script is empty"),
    ],
)
def test_scripts_of_anything_but_strings_fail(script: str, expected: str) -> None:
    """A script line that is not a string fails at its line (quote `key: value` lines)."""
    assert error_of(f"j:\n  script: {script}\n").startswith(expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ".alloy-ci.yml:1: no jobs: the file is empty"),
        ("- a\n", ".alloy-ci.yml:1: expected a mapping of job names to jobs at the top level"),
        (".t: {script: x}\n", ".alloy-ci.yml:1: no jobs: a pipeline needs a job whose name"),
        ("j: [x]\n", ".alloy-ci.yml:1: job 'j' must be a mapping, not a list"),
        ("j:\n  extends: .x\n  script: y\n", ".alloy-ci.yml:2: job 'j': extends unknown job '.x'"),
        (".a: {extends: .a}\nj: {extends: .a, script: x}\n", ".alloy-ci.yml:1: job '.a': extends"),
        ("variables:\n  A: [1]\nj: {script: x}\n", ".alloy-ci.yml:2: variable 'A' must be"),
        ("stages: [a, b, a]\nj: {script: x}\n", ".alloy-ci.yml:1: stages: stage 'a' is listed"),
        ("j: {script: x, allow_failure: maybe}\n", ".alloy-ci.yml:1: job 'j': allow_failure must"),
        ("j: {script: x, timeout: 0}\n", ".alloy-ci.yml:1: job 'j': timeout must be longer"),
        ("j: {script: x, needs: web}\n", ".alloy-ci.yml:1: job 'j': needs must be a list"),
        ("j:\n  script: !reference [.a, b]\n", ".alloy-ci.yml:2: !reference [.a, b]: '.a' not"),
        ("j:\n  script: x\x07\n", ".alloy-ci.yml:2: character #x0007"),
    ],
)
def test_other_errors_are_one_line_with_file_and_line(text: str, expected: str) -> None:
    """Every error the reader raises is one line starting FILE:LINE."""
    assert error_of(text).startswith(expected)


def test_job_steps_are_the_api_v4_steps() -> None:
    """`script` runs on success; `after_script` always, may fail, and shares the job timeout."""
    spec = parse("j:\n  script: [a]\n  after_script: [z]\n  timeout: 10m\n")
    assert job_steps(job(spec, "j")) == (
        Step("script", ("a",), 600, "on_success", allow_failure=False),
        Step("after_script", ("z",), 600, "always", allow_failure=True),
    )
    assert [s.name for s in job_steps(job(parse("j: {script: a}\n"), "j"))] == ["script"]


def test_load_pipeline_names_the_file_in_messages(tmp_path: Path) -> None:
    """load_pipeline reads a file; its path starts every warning and error."""
    path = tmp_path / ".alloy-ci.yml"
    path.write_text("j:\n  script: x\n  tags: [a]\n", encoding="utf-8")
    assert load_pipeline(path).warnings == (
        f"{path}:3: job 'j': key 'tags' is not supported and was ignored",
    )
    with pytest.raises(PipelineError, match=r"missing\.yml: cannot read it"):
        load_pipeline(tmp_path / "missing.yml")


_name = st.from_regex(r"[a-z][a-z0-9_-]{0,8}", fullmatch=True)


@st.composite
def pipelines(draw: st.DrawFn) -> tuple[list[str], list[tuple[str, str]]]:
    """Draw stages and jobs (name, stage) over them, in file order."""
    stages = draw(st.lists(_name, min_size=1, max_size=6, unique=True))
    names = draw(st.lists(_name.map(lambda n: f"job-{n}"), max_size=15, unique=True))
    jobs = [(name, draw(st.sampled_from(stages))) for name in names]
    return stages, jobs


@given(pipelines())
def test_any_valid_jobs_come_out_in_stage_order_and_none_is_lost(
    pipeline: tuple[list[str], list[tuple[str, str]]],
) -> None:
    """For generated stages and jobs, the plan is the jobs stably sorted by stage."""
    stages, jobs = pipeline
    document: dict[str, object] = {"stages": stages, ".hidden": {"script": "x"}}
    document.update({name: {"stage": stage, "script": [f"echo {name}"]} for name, stage in jobs})
    document["job-always-there"] = {"stage": stages[0], "script": "x"}
    jobs.append(("job-always-there", stages[0]))

    spec = parse_pipeline(yaml.safe_dump(document, sort_keys=False))

    expected = sorted(jobs, key=lambda j: stages.index(j[1]))
    assert [(j.name, j.stage) for j in spec.jobs] == expected
    assert spec.warnings == ()
