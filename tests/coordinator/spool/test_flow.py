"""The spool runs a pipeline as GitLab would: needs as a graph, manual and delayed jobs,
retries, resource groups and allowed exit codes (in-process, through Spool's own calls)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alloy_runner.build.states import FailureReason
from alloy_runner.coordinator.spool.records import SpoolStatus
from alloy_runner.coordinator.spool.store import Spool, Taken
from alloy_runner.exceptions import PipelineError
from alloy_runner.pipeline.ci_yaml import parse_pipeline
from alloy_runner.pipeline.repo import Repo
from alloy_runner.pipeline.submit import submit


def start(tmp_path: Path, text: str) -> tuple[Spool, dict[str, int]]:
    spool = Spool(tmp_path / "spool")
    repo = Repo(root=tmp_path)
    spec = parse_pipeline(textwrap.dedent(text).lstrip("\n"), ".alloy-ci.yml", repo)
    _, planned = submit(spool, spec, repo)
    return spool, {p.job.name: p.job.id for p in planned}


def take(spool: Spool) -> dict[str, Taken]:
    """Take every job that may start now, by name."""
    taken = {}
    while (one := spool.take()) is not None:
        taken[one.job.name] = one
    return taken


def finish(spool: Spool, taken: Taken, ok: bool = True, exit_code: int | None = None) -> None:
    status = SpoolStatus.SUCCESS if ok else SpoolStatus.FAILED
    reason = None if ok else FailureReason.SCRIPT_FAILURE
    code = exit_code if exit_code is not None else (0 if ok else 1)
    spool.complete(taken, status, reason, duration=0.1, exit_code=code, runner="t")


def test_a_job_starts_when_its_needs_finish_not_its_stage(tmp_path: Path) -> None:
    spool, ids = start(
        tmp_path,
        """
        slow: {stage: build, script: x}
        quick: {stage: build, script: x}
        early: {stage: test, script: x, needs: [quick]}
        at-once: {stage: deploy, script: x, needs: []}
        staged: {stage: test, script: x}
        """,
    )
    first = take(spool)
    assert set(first) == {"slow", "quick", "at-once"}
    finish(spool, first["quick"])
    assert set(take(spool)) == {"early"}
    assert spool.status(ids["staged"]) == "waiting"
    finish(spool, first["slow"])
    assert set(take(spool)) == {"staged"}


def test_a_failed_need_skips_the_job_and_runs_on_failure_ones(tmp_path: Path) -> None:
    spool, ids = start(
        tmp_path,
        """
        build: {stage: build, script: x}
        test: {stage: test, script: x, needs: [build]}
        cleanup: {stage: test, script: x, needs: [build], when: on_failure}
        always: {stage: deploy, script: x, when: always}
        """,
    )
    finish(spool, take(spool)["build"], ok=False)
    assert spool.status(ids["test"]) == "skipped"
    assert set(take(spool)) == {"cleanup"}


def test_manual_jobs_wait_for_play(tmp_path: Path) -> None:
    spool, ids = start(
        tmp_path,
        """
        build: {stage: build, script: x}
        deploy: {stage: deploy, script: x, when: manual}
        blocking:
          stage: deploy
          script: x
          rules: [{when: manual}]
        after: {stage: .post, script: x}
        """,
    )
    finish(spool, take(spool)["build"])
    assert take(spool) == {}
    assert spool.status(ids["deploy"]) == spool.status(ids["blocking"]) == "manual"
    assert spool.play(ids["deploy"]) == "started"
    assert set(take(spool)) == {"deploy"}
    assert spool.status(ids["after"]) == "waiting"  # `blocking` may not fail: it holds .post
    assert spool.play(ids["after"]) == "not manual (waiting)"
    assert spool.play(999) == "unknown"


def test_a_manual_job_that_may_fail_does_not_hold_later_stages(tmp_path: Path) -> None:
    spool, ids = start(
        tmp_path,
        "deploy: {stage: deploy, script: x, when: manual}\nafter: {stage: .post, script: x}\n",
    )
    assert set(take(spool)) == {"after"}
    assert spool.status(ids["deploy"]) == "manual"


def test_a_delayed_job_waits_for_its_time_or_play(tmp_path: Path) -> None:
    spool, ids = start(tmp_path, "later: {script: x, when: delayed, start_in: 1 hour}\n")
    assert spool.status(ids["later"]) == "pending"
    assert take(spool) == {}
    assert spool.play(ids["later"]) == "started"
    assert set(take(spool)) == {"later"}


def test_retry_requeues_a_failed_job_until_its_max(tmp_path: Path) -> None:
    spool, ids = start(tmp_path, "flaky: {script: x, retry: 1}\nnext: {stage: deploy, script: x}\n")
    finish(spool, take(spool)["flaky"], ok=False)
    assert spool.status(ids["flaky"]) == "pending"
    assert spool.attempt(ids["flaky"]) == 2
    again = take(spool)["flaky"]
    finish(spool, again, ok=False)
    result = spool.result(ids["flaky"])
    assert result is not None and (result.status, result.attempt) == ("failed", 2)
    assert spool.status(ids["next"]) == "skipped"


def test_retry_when_and_exit_codes_limit_what_is_retried(tmp_path: Path) -> None:
    spool, ids = start(
        tmp_path,
        """
        system-only: {script: x, retry: {max: 2, when: runner_system_failure}}
        code-137: {script: x, retry: {max: 2, exit_codes: [137]}}
        """,
    )
    taken = take(spool)
    finish(spool, taken["system-only"], ok=False)
    finish(spool, taken["code-137"], ok=False, exit_code=137)
    assert spool.status(ids["system-only"]) == "failed"
    assert spool.status(ids["code-137"]) == "pending"


def test_allow_failure_exit_codes(tmp_path: Path) -> None:
    spool, ids = start(
        tmp_path,
        """
        check:
          stage: build
          script: x
          allow_failure: {exit_codes: [3]}
        other: {stage: build, script: x, allow_failure: {exit_codes: [3]}}
        next: {stage: test, script: x}
        """,
    )
    taken = take(spool)
    finish(spool, taken["check"], ok=False, exit_code=3)
    finish(spool, taken["other"], ok=False, exit_code=4)
    assert spool.status(ids["next"]) == "skipped"  # exit 4 was not allowed


def test_one_job_at_a_time_per_resource_group(tmp_path: Path) -> None:
    spool, ids = start(
        tmp_path,
        """
        a: {script: x, resource_group: prod}
        b: {script: x, resource_group: prod}
        c: {script: x, resource_group: staging}
        """,
    )
    first = take(spool)
    assert set(first) == {"a", "c"}
    assert spool.status(ids["b"]) == "pending"
    finish(spool, first["a"])
    assert set(take(spool)) == {"b"}


def submit_at(spool: Spool, tmp_path: Path, text: str, sha: str) -> dict[str, int]:
    repo = Repo(root=tmp_path, sha=sha, ref="main", in_git=True)
    spec = parse_pipeline(textwrap.dedent(text).lstrip("\n"), ".alloy-ci.yml", repo)
    _, planned = submit(spool, spec, repo)
    return {p.job.name: p.job.id for p in planned}


INTERRUPTIBLE = """
lint: {stage: build, script: x, interruptible: true}
test: {stage: test, script: x, interruptible: true}
deploy: {stage: deploy, script: x}
"""


def test_a_new_commit_cancels_an_older_interruptible_pipeline(tmp_path: Path) -> None:
    """GitLab's auto-cancel (conservative): only interruptible jobs have started, so the
    older pipeline of the same ref is canceled, running job included."""
    spool = Spool(tmp_path / "spool")
    old = submit_at(spool, tmp_path, INTERRUPTIBLE, "1" * 40)
    running = take(spool)["lint"]
    same_commit = submit_at(spool, tmp_path, INTERRUPTIBLE, "1" * 40)
    assert spool.status(old["test"]) == "waiting"  # a rerun of the same commit cancels nothing
    submit_at(spool, tmp_path, INTERRUPTIBLE, "2" * 40)
    assert spool.canceled(running.job.id)  # the runner is told to stop it
    assert spool.status(old["test"]) == spool.status(old["deploy"]) == "canceled"
    assert spool.status(same_commit["test"]) == "canceled"


def test_a_started_job_that_is_not_interruptible_keeps_its_pipeline(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    old = submit_at(
        spool,
        tmp_path,
        INTERRUPTIBLE.replace(
            "lint: {stage: build, script: x, interruptible: true}",
            "lint: {stage: build, script: x}",
        ),
        "1" * 40,
    )
    take(spool)
    submit_at(spool, tmp_path, INTERRUPTIBLE, "2" * 40)
    assert spool.status(old["lint"]) == "running"
    assert spool.status(old["test"]) == "waiting"


def test_workflow_auto_cancel_none_cancels_nothing(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    old = submit_at(spool, tmp_path, INTERRUPTIBLE, "1" * 40)
    text = "workflow:\n  auto_cancel:\n    on_new_commit: none\n" + INTERRUPTIBLE
    submit_at(spool, tmp_path, text, "2" * 40)
    assert spool.status(old["lint"]) == "pending"


@st.composite
def pipelines(draw: st.DrawFn) -> tuple[str, list[bool]]:
    """A random pipeline of 1-8 jobs over 3 stages, needs only on earlier jobs, and outcomes."""
    count = draw(st.integers(1, 8))
    lines: list[str] = []
    names: list[str] = []
    for index in range(count):
        name = f"j{index}"
        stage = draw(st.sampled_from(["build", "test", "deploy"]))
        when = draw(st.sampled_from(["on_success", "on_success", "always", "on_failure", "manual"]))
        lines.append(f"{name}:\n  stage: {stage}\n  script: x\n  when: {when}")
        earlier = list(names)
        if earlier and bool(draw(st.booleans())):
            needs = draw(st.lists(st.sampled_from(earlier), max_size=3, unique=True))
            lines.append(f"  needs: [{', '.join(needs)}]")
        names.append(name)
    outcomes = draw(st.lists(st.booleans(), min_size=count, max_size=count))
    return "\n".join(lines) + "\n", outcomes


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pipelines())
def test_every_pipeline_ends_and_no_job_starts_before_its_needs(
    tmp_path_factory: pytest.TempPathFactory, case: tuple[str, list[bool]]
) -> None:
    text, outcomes = case
    try:
        spool, ids = start(tmp_path_factory.mktemp("flow"), text)
    except PipelineError:
        return  # a need on a job of a later stage: refused, as GitLab refuses it
    spec = parse_pipeline(text, ".alloy-ci.yml", Repo(root=Path.cwd()))
    needs = {j.name: j.needs for j in spec.jobs}
    for _ in range(100):
        taken = take(spool)
        if not taken:
            manual = [i for i in ids.values() if spool.status(i) == "manual"]
            if not manual:
                break
            spool.play(manual[0])
            continue
        for name, one in taken.items():
            for need in needs[name] or ():
                assert spool.result(ids[need]) is not None, f"{name} started before {need}"
            finish(spool, one, ok=outcomes[int(name[1:])])
    assert all(spool.result(i) is not None for i in ids.values()), {
        n: spool.status(i) for n, i in ids.items()
    }
