"""The CI/CD semantic-convention pieces that need no process: URLs, task types, run results."""

from __future__ import annotations

import pytest

from alloy_runner.coordinator.spool.records import JobResult
from alloy_runner.coordinator.spool.runs import RunTrace, run_result
from alloy_runner.telemetry.otlp.semconv import public_url, task_type


@pytest.mark.parametrize(
    ("url", "public"),
    [
        ("https://gitlab-ci-token:s3cret@git.example/g/p.git", "https://git.example/g/p.git"),
        ("https://git.example:8443/g/p.git", "https://git.example:8443/g/p.git"),
        ("file:///srv/repo", "file:///srv/repo"),
        ("user:pw@host:repo.git", ""),  # scp-like with credentials: nothing rather than a leak
    ],
)
def test_a_repository_url_never_carries_credentials(url: str, public: str) -> None:
    """vcs.repository.url.full and the job URL lose user and password (a clone URL has a token)."""
    assert public_url(url) == public


def test_the_task_type_comes_from_a_stage_named_as_one() -> None:
    """build, test and deploy stages give cicd.pipeline.task.type; other stages give none."""
    assert [task_type(s) for s in ("build", "Test", "deploy", "lint")] == [
        "build",
        "test",
        "deploy",
        None,
    ]


def test_a_given_traceparent_becomes_the_runs_parent() -> None:
    """A valid TRACEPARENT keeps its trace and becomes the run span's parent; a bad one is new."""
    given = "00-" + "1" * 32 + "-" + "2" * 16 + "-01"
    run = RunTrace.new(given)
    assert (run.trace_id, run.parent_span_id) == ("1" * 32, "2" * 16)
    assert run.span_id != "2" * 16 and len(run.span_id) == 16
    fresh = RunTrace.new("00-" + "0" * 32 + "-" + "2" * 16 + "-01")
    assert fresh.parent_span_id == "" and fresh.trace_id != "0" * 32


@pytest.mark.parametrize(
    ("jobs", "expected"),
    [
        ([(False, "success", None), (False, "skipped", None)], ("success", None)),
        ([(True, "failed", "script_failure"), (False, "success", None)], ("success", None)),
        ([(False, "failed", "script_failure")], ("failure", "script_failure")),
        ([(False, "failed", "runner_system_failure")], ("error", "runner_system_failure")),
        ([(False, "timedout", "job_execution_timeout")], ("timeout", "job_execution_timeout")),
        (
            [(False, "success", None), (False, "canceled", "job_canceled")],
            ("cancellation", "canceled"),
        ),
        ([(False, "skipped", None)], ("skip", None)),
    ],
)
def test_a_pipeline_result_follows_its_jobs(
    jobs: list[tuple[bool, str, str | None]], expected: tuple[str, str | None]
) -> None:
    """cicd.pipeline.result: an allowed failure does not fail the run; a script failure is a
    failure, another reason an error; a canceled job cancels it."""
    results = [
        (allowed, JobResult.from_json({"id": n, "status": s, "failure_reason": r}))
        for n, (allowed, s, r) in enumerate(jobs)
    ]
    assert run_result(results) == expected


def test_every_catalog_family_has_an_otlp_name_and_unit() -> None:
    """A new family cannot go over OTLP under its Prometheus name: it needs an entry here."""
    from alloy_runner.telemetry.catalog.instruments import CATALOG
    from alloy_runner.telemetry.otlp.names import OTLP_NAMES

    assert {f.name for f in CATALOG} == set(OTLP_NAMES)
    names = [otel for otel, _ in OTLP_NAMES.values()]
    assert len(names) == len(set(names))
    assert all("_total" not in n and not n.endswith(("_seconds", "_bytes")) for n in names)
    for family in CATALOG:
        if family.unit:
            assert OTLP_NAMES[family.name][1] == family.unit, family.name
