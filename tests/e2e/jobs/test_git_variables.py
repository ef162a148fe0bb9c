"""A job's GIT_* variables through a real `alloy-runner run` and the spool: GIT_STRATEGY
none, fetch and clone, GIT_DEPTH, a recursive submodule checkout, and GIT_CLONE_PATH,
which fails the job as runner_configuration_error (custom_build_dir is refused here)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.jobs import JobsRig, Project, git, pipeline
from tests.support.runner import RunnerProcess

Rig = tuple[JobsRig, RunnerProcess]

# git refuses file:// submodules by default (2.38.1); a job can allow them, as here.
ALLOW_FILE_SUBMODULES = {
    "GIT_CONFIG_COUNT": "1",
    "GIT_CONFIG_KEY_0": "protocol.file.allow",
    "GIT_CONFIG_VALUE_0": "always",
}


@pytest.fixture(scope="module")
def one_slot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    """One runner with one slot: the jobs of a project share one project directory."""
    rig = JobsRig(tmp_path_factory.mktemp("git-variables"))
    try:
        yield rig, rig.runner(rig.config(concurrent=1))
    finally:
        rig.stop_all()


def _record(name: str, command: str) -> str:
    return f'{command} > "$OUT/{name}-$CI_JOB_ID"'


def _read(rig: JobsRig, name: str, job_id: int) -> str:
    return (rig.out / f"{name}-{job_id}").read_text().strip()


def test_git_strategy_none_runs_the_job_without_a_repository(one_slot: Rig) -> None:
    rig, _ = one_slot
    job = {
        "variables": {"GIT_STRATEGY": "none"},
        "script": [_record("git", "ls -A"), _record("pwd", "pwd")],
    }
    project = rig.project("none", pipeline(only=job))
    project.git_init().commit("init")
    job_id = rig.submit(project).jobs["only"]
    assert rig.wait_results([job_id])[job_id]["status"] == "success"
    assert _read(rig, "git", job_id) == ""  # no .git, no .alloy-ci.yml
    assert _read(rig, "pwd", job_id).startswith(str(rig.builds))
    trace = rig.trace(job_id)
    assert b"Skipping Git repository setup" in trace
    assert b"Skipping Git checkout" in trace


def test_git_strategy_clone_starts_again_and_fetch_keeps_the_repository(one_slot: Rig) -> None:
    """first leaves a file and a mark in .git; fetch (no clean) keeps both, clone neither."""
    rig, _ = one_slot
    seen = 'echo "$(ls left.txt .git/mark 2>/dev/null | tr "\\n" " ")"'
    jobs = {
        "first": {"stage": "a", "script": ["touch left.txt .git/mark"]},
        "fetched": {
            "stage": "b",
            "variables": {"GIT_STRATEGY": "fetch", "GIT_CLEAN_FLAGS": "none"},
            "script": [_record("seen", seen)],
        },
        "cloned": {
            "stage": "c",
            "variables": {"GIT_STRATEGY": "clone", "GIT_CLEAN_FLAGS": "none"},
            "script": [_record("seen", seen), _record("head", "git rev-parse HEAD")],
        },
    }
    project = rig.project("clone", pipeline(["a", "b", "c"], **jobs))
    project.git_init()
    sha = project.commit("init")
    ids = rig.submit(project).jobs
    results = rig.wait_results(ids.values(), timeout=60)
    assert {results[i]["status"] for i in ids.values()} == {"success"}, results
    assert _read(rig, "seen", ids["fetched"]) == ".git/mark left.txt"
    assert _read(rig, "seen", ids["cloned"]) == ""
    assert _read(rig, "head", ids["cloned"]) == sha
    assert b"Created fresh repository." in rig.trace(ids["cloned"])


def test_git_depth_fetches_that_many_commits(one_slot: Rig) -> None:
    rig, _ = one_slot
    job = {
        "variables": {"GIT_DEPTH": "1"},
        "script": [_record("count", "git rev-list --count HEAD")],
    }
    project = rig.project("depth", pipeline(only=job))
    project.git_init().commit("one")
    (project.path / "two.txt").write_text("two\n")
    project.commit("two")
    job_id = rig.submit(project).jobs["only"]
    assert rig.wait_results([job_id])[job_id]["status"] == "success"
    assert _read(rig, "count", job_id) == "1"
    assert b"Fetching changes with git depth set to 1..." in rig.trace(job_id)


def _repo(path: Path, files: dict[str, str]) -> Project:
    path.mkdir(parents=True)
    repo = Project(path).git_init()
    for name, text in files.items():
        (path / name).write_text(text)
    repo.commit("first")
    return repo


def _add_submodule(repo: Project, url: str, where: str) -> None:
    git(repo.path, "-c", "protocol.file.allow=always", "submodule", "add", "-q", url, where)
    repo.commit(f"submodule {where}")


def test_git_submodule_strategy_recursive_checks_out_nested_submodules(one_slot: Rig) -> None:
    rig, _ = one_slot
    upstream = rig.root / "upstream"
    nested = _repo(upstream / "nested", {"nested.txt": "nested\n"})
    sub = _repo(upstream / "sub", {"sub.txt": "sub\n"})
    _add_submodule(sub, nested.path.as_uri(), "deep")
    job = {
        "variables": {"GIT_SUBMODULE_STRATEGY": "recursive", **ALLOW_FILE_SUBMODULES},
        "script": [_record("nested", "cat sub/deep/nested.txt")],
    }
    project = rig.project("submodules", pipeline(only=job))
    project.git_init().commit("init")
    _add_submodule(project, sub.path.as_uri(), "sub")
    job_id = rig.submit(project).jobs["only"]
    result = rig.wait_results([job_id])[job_id]
    assert result["status"] == "success", rig.trace(job_id).decode(errors="replace")
    assert _read(rig, "nested", job_id) == "nested"
    assert b"Updating/initializing submodules recursively..." in rig.trace(job_id)


def test_git_clone_path_fails_the_job_as_a_configuration_error(one_slot: Rig) -> None:
    rig, _ = one_slot
    job = {
        "variables": {"GIT_CLONE_PATH": "$CI_BUILDS_DIR/elsewhere"},
        "script": ['touch "$OUT/ran-$CI_JOB_ID"'],
    }
    project = rig.project("clone-path", pipeline(only=job))
    project.git_init().commit("init")
    job_id = rig.submit(project).jobs["only"]
    result = rig.wait_results([job_id])[job_id]
    assert (result["status"], result["failure_reason"]) == ("failed", "runner_configuration_error")
    assert b"setting GIT_CLONE_PATH is not allowed, enable `custom_build_dir` feature" in (
        rig.trace(job_id)
    )
    assert not (rig.out / f"ran-{job_id}").exists()
