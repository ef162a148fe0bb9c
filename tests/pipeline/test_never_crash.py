"""No input crashes the reader: random pipelines built from GitLab's own vocabulary either
read into a plan or fail with one PipelineError line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alloy_runner.exceptions import PipelineError
from alloy_runner.pipeline.ci_yaml import PipelineSpec, parse_pipeline
from alloy_runner.pipeline.repo import Repo

KEYS = [
    *("stage", "script", "before_script", "after_script", "variables", "rules", "if", "when"),
    *("only", "except", "refs", "needs", "job", "artifacts", "optional", "parallel", "matrix"),
    *("extends", "include", "local", "template", "workflow", "default", "stages", "types"),
    *("retry", "max", "exit_codes", "allow_failure", "start_in", "resource_group", "changes"),
    *("exists", "paths", "cache", "key", "timeout", "dependencies", "inherit", "name", "value"),
    *("expand", "interruptible", "auto_cancel", "on_new_commit", "type", "tags", "image"),
    *("build", "test", "deploy", ".hidden", "job1", "job2", "A", "B"),
]
WORDS = [
    *("$CI_COMMIT_BRANCH == 'main'", "$A =~ /x/i", "($A || $B) && $C", "$A ==", "manual"),
    *("delayed", "never", "always", "on_failure", "1 hour", "build", "test", "job1", "job2"),
    *(".hidden", "echo $A", "$$A", "%A%", "${A}", "/re(/", "**/*.yml", "x.yml", "3", ""),
]
scalars = st.one_of(
    st.sampled_from(WORDS), st.integers(-3, 300), st.booleans(), st.none(), st.text(max_size=8)
)
values: st.SearchStrategy[Any] = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(KEYS), inner, max_size=5),
    ),
    max_leaves=25,
)
pipelines = st.dictionaries(st.sampled_from(KEYS), values, min_size=1, max_size=6)


def read(text: str, root: Path) -> PipelineSpec | str:
    try:
        return parse_pipeline(text, ".alloy-ci.yml", Repo(root=root))
    except PipelineError as exc:
        message = str(exc)
        assert message.startswith(".alloy-ci.yml:") or message.startswith("x.yml:"), message
        assert "\n" not in message
        return message


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pipelines)
def test_random_pipelines_read_or_fail_with_one_line(tmp_path_factory: Any, data: Any) -> None:
    root = tmp_path_factory.getbasetemp()
    read(yaml.safe_dump(data), root)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab:- \n[]{}!&*'\"$#|>", max_size=60))
def test_random_text_reads_or_fails_with_one_line(tmp_path_factory: Any, text: str) -> None:
    read("j: {script: x}\n" + text, tmp_path_factory.getbasetemp())


def test_reference_and_include_shapes(tmp_path: Path) -> None:
    (tmp_path / "x.yml").write_text("include: x.yml\nk: {script: [!reference [k, script]]}\n")
    for text in (
        "include: x.yml\n",
        "a: {script: !reference [a, script]}\n",
        "a: {script: [!reference [[1], 2]]}\n",
        "a: {script: !reference []}\n",
        "include: [{local: x.yml, rules: [{exists: 5}]}]\nj: {script: x}\n",
    ):
        assert isinstance(read(text, tmp_path), str | PipelineSpec)
