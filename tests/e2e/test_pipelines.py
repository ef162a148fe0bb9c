"""Whole pipelines through the real CLI and a real runner: rules on a branch, a matrix,
a needs graph, a manual job played by `play`, a retry, and bad input refused with exit 2."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.jobs import JobsRig, Project, git
from tests.support.polling import wait_until
from tests.support.runner import RunnerProcess

pytestmark = pytest.mark.e2e

EXIT_USAGE = 2


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[JobsRig]:
    the_rig = JobsRig(tmp_path)
    try:
        yield the_rig
    finally:
        the_rig.stop_all()


@pytest.fixture
def runner(rig: JobsRig) -> RunnerProcess:
    return rig.runner(rig.config(concurrent=4))


def repo(rig: JobsRig, name: str, text: str) -> Project:
    project = rig.project(name, text).git_init()
    project.commit("first")
    return project


RULES = """
variables:
  CACHE_DIR: $CI_PROJECT_DIR/.cache
  RAW: {value: $CI_PROJECT_DIR, expand: false}
  PRICE: $$5
everywhere:
  script:
    - echo "cache in $CACHE_DIR" > "$OUT/everywhere-$CI_COMMIT_REF_SLUG"
    - echo "$RAW $PRICE" > "$OUT/raw"
main-only:
  script: ["echo main"]
  rules:
    - if: $CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH
feature-only:
  script: ["echo feature on $CI_COMMIT_BRANCH"]
  only: [/^feature\\//]
"""


def test_rules_follow_the_branch(rig: JobsRig, runner: RunnerProcess) -> None:
    project = repo(rig, "rules", RULES)
    on_main = rig.submit(project)
    git(project.path, "checkout", "-q", "-b", "feature/x")
    on_feature = rig.submit(project)
    assert set(on_main.jobs) == {"everywhere", "main-only"}
    assert set(on_feature.jobs) == {"everywhere", "feature-only"}
    results = rig.wait_results([*on_main.ids, *on_feature.ids])
    assert {r["status"] for r in results.values()} == {"success"}
    written = (rig.out / "everywhere-feature-x").read_text().strip()
    assert written.startswith("cache in /") and written.endswith("/.cache")
    assert (rig.out / "raw").read_text() == "$CI_PROJECT_DIR $5\n"
    by_ref = rig.submit(project, "--ref", "main")
    assert set(by_ref.jobs) == {"everywhere", "main-only"}


MATRIX = """
test:
  script:
    - echo "$PROVIDER-$STACK $CI_NODE_INDEX/$CI_NODE_TOTAL" > "$OUT/$PROVIDER-$STACK"
  parallel:
    matrix:
      - PROVIDER: aws
        STACK: [app1, app2]
      - PROVIDER: gcp
        STACK: data
"""


def test_a_matrix_runs_one_job_per_combination(rig: JobsRig, runner: RunnerProcess) -> None:
    submitted = rig.submit(repo(rig, "matrix", MATRIX))
    assert list(submitted.jobs) == ["test: [aws, app1]", "test: [aws, app2]", "test: [gcp, data]"]
    results = rig.wait_results(submitted.ids)
    assert all(r["status"] == "success" for r in results.values())
    assert (rig.out / "aws-app2").read_text() == "aws-app2 2/3\n"
    assert (rig.out / "gcp-data").read_text() == "gcp-data 3/3\n"


NEEDS = """
stages: [build, test]
slow-build:
  stage: build
  script: ['"$WAIT_FOR" "$OUT/release-slow"']
quick-build:
  stage: build
  script: ["echo quick"]
quick-test:
  stage: test
  needs: [quick-build]
  script: ['touch "$OUT/quick-test-ran"']
staged-test:
  stage: test
  script: ["echo after every build"]
"""


def test_a_needs_graph_finishes_before_stage_order_would(
    rig: JobsRig, runner: RunnerProcess
) -> None:
    submitted = rig.submit(repo(rig, "needs", NEEDS))
    ids = submitted.jobs
    quick = rig.wait_results([ids["quick-test"]])[ids["quick-test"]]
    assert rig.result(ids["slow-build"]) is None  # still running: stage order would wait
    assert rig.result(ids["staged-test"]) is None
    (rig.out / "release-slow").touch()
    results = rig.wait_results(submitted.ids)
    assert quick["finished_at"] < results[ids["slow-build"]]["finished_at"]
    assert results[ids["staged-test"]]["started_at"] >= results[ids["slow-build"]]["finished_at"]


def test_a_manual_job_runs_when_played(rig: JobsRig, runner: RunnerProcess) -> None:
    text = (
        "build:\n  script: [echo build]\ndeploy:\n  stage: deploy\n  when: manual\n"
        "  script: ['touch \"$OUT/deployed\"']\n"
    )
    submitted = rig.submit(repo(rig, "manual", text))
    deploy = submitted.jobs["deploy"]
    rig.wait_results([submitted.jobs["build"]])
    wait_until(lambda: deploy in rig.in_dir("manual"), 10, 0.05, "deploy waiting to be played")
    assert not (rig.out / "deployed").exists()
    played = rig.cli("play", str(deploy), "--spool", str(rig.spool))
    assert (played.returncode, played.stdout) == (0, f"job {deploy}: started\n")
    assert rig.wait_results([deploy])[deploy]["status"] == "success"
    assert (rig.out / "deployed").exists()


def test_a_retry_succeeds_on_its_second_attempt(rig: JobsRig, runner: RunnerProcess) -> None:
    text = (
        "flaky:\n  retry: 2\n  script:\n"
        '    - if [ -e "$OUT/tried" ]; then echo second try; exit 0; fi\n'
        '    - touch "$OUT/tried"\n    - exit 1\n'
    )
    submitted = rig.submit(repo(rig, "retry", text))
    job_id = submitted.jobs["flaky"]
    result = rig.wait_results([job_id])[job_id]
    assert (result["status"], result["attempt"]) == ("success", 2)
    assert b"second try" in rig.trace(job_id)
    assert (
        (rig.done_dir(job_id) / "trace-attempt-1.log")
        .read_bytes()
        .endswith(b"ERROR: Job failed: exit code 1\n")
    )


def test_dry_run_prints_the_jobs_and_queues_nothing(rig: JobsRig) -> None:
    project = repo(rig, "dry", RULES + NEEDS.replace("stages: [build, test]\n", ""))
    done = rig.cli(
        "submit",
        "--file",
        str(project.file),
        "--spool",
        str(rig.spool),
        "--dry-run",
        "--var",
        "EXTRA=$CI_COMMIT_REF_NAME!",
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("pipeline for main (") and lines[0].endswith("6 job(s)")
    assert "  quick-test: when on_success" in lines
    assert "    needs: quick-build" in done.stdout
    assert "    EXTRA=main!" in lines
    assert "    CACHE_DIR=$CI_PROJECT_DIR/.cache" in lines  # the runner knows it, not submit
    assert not (rig.spool / "pipelines").exists() or not any((rig.spool / "pipelines").iterdir())


def test_workflow_rules_that_make_no_pipeline_queue_nothing(rig: JobsRig) -> None:
    text = "workflow:\n  rules:\n    - if: $CI_COMMIT_TAG\nj: {script: x}\n"
    project = repo(rig, "workflow", text)
    done = rig.cli("submit", "--file", str(project.file), "--spool", str(rig.spool))
    assert done.returncode == 0, done.stderr
    assert "no pipeline: workflow:rules created no pipeline" in done.stderr
    git(project.path, "tag", "v1")
    tagged = rig.submit(project, "--ref", "v1")
    assert list(tagged.jobs) == ["j"]
    payload = json.loads((rig.spool / "pending" / f"{tagged.ids[0]}.json").read_text())
    variables = {v["key"]: v["value"] for v in payload["variables"]}
    assert variables["CI_COMMIT_TAG"] == "v1"
    assert "CI_COMMIT_BRANCH" not in variables


def test_submit_wait_ends_at_a_manual_job_nobody_played(
    rig: JobsRig, runner: RunnerProcess
) -> None:
    text = (
        "build:\n  script: [echo build]\ndeploy:\n  stage: deploy\n  when: manual\n  script: [x]\n"
    )
    project = repo(rig, "wait-manual", text)
    done = rig.cli(
        "submit", "--file", str(project.file), "--spool", str(rig.spool), "--wait", timeout=60
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[-2].endswith(" build: success")
    assert lines[-1].endswith(": manual (not played)")


def test_dry_run_json_describes_each_job(rig: JobsRig) -> None:
    project = repo(rig, "dry-json", MATRIX + NEEDS.replace("stages: [build, test]\n", ""))
    done = rig.cli(
        "submit",
        "--file",
        str(project.file),
        "--dry-run",
        "--json",
        "--masked-var",
        "TOKEN=s3cret-value",
    )
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert (document["pipeline"], document["ref"], document["source"]) == (None, "main", "push")
    jobs = {job["name"]: job for job in document["jobs"]}
    assert jobs["test: [aws, app2]"]["variables"] == {
        "PROVIDER": "aws",
        "STACK": "app2",
        "CI_NODE_INDEX": "2",
        "CI_NODE_TOTAL": "3",
        "TOKEN": "[MASKED]",
    }
    assert jobs["quick-test"]["needs"] == ["quick-build"]
    assert jobs["staged-test"]["needs"] is None
    assert "s3cret-value" not in done.stdout


def test_rules_that_leave_every_job_out_exit_2(rig: JobsRig) -> None:
    project = repo(rig, "none", "j:\n  script: x\n  rules:\n    - if: $CI_COMMIT_TAG\n")
    done = rig.cli("submit", "--file", str(project.file), "--spool", str(rig.spool))
    assert done.returncode == EXIT_USAGE
    assert done.stderr == (
        f"alloy-runner: error: {project.file}: no jobs: rules, only and except leave every"
        " job out for main (push)\n"
    )
    filtered = repo(rig, "filtered", "workflow:\n  rules:\n    - when: never\nj: {script: x}\n")
    done = rig.cli("submit", "--file", str(filtered.file), "--spool", str(rig.spool), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["jobs"] == []


RESOURCE_GROUP = """
deploy-a:
  resource_group: production
  script: ['sleep 0.5']
deploy-b:
  resource_group: production
  script: ['sleep 0.5']
other:
  resource_group: staging
  script: ['sleep 0.5']
later:
  stage: deploy
  when: delayed
  start_in: 1 second
  script: [echo later]
"""


def test_resource_groups_and_delayed_jobs(rig: JobsRig, runner: RunnerProcess) -> None:
    """One job of a resource group at a time (the runner may run 4); a delayed job waits."""
    submitted = rig.submit(repo(rig, "groups", RESOURCE_GROUP))
    results = rig.wait_results(submitted.ids)
    assert {r["status"] for r in results.values()} == {"success"}
    a, b, other, later = (
        results[submitted.jobs[n]] for n in ("deploy-a", "deploy-b", "other", "later")
    )
    first, second = sorted((a, b), key=lambda r: r["started_at"])
    assert second["started_at"] >= first["finished_at"]  # never both at once
    assert other["started_at"] < second["started_at"]  # another group did not wait
    last_of_test = max(r["finished_at"] for r in (a, b, other))
    assert later["started_at"] >= last_of_test + 1.0
