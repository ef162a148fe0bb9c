"""A docker job cannot reach the runner's HOST through the stages that run there
(get_sources, caches, artifacts): not with its variables, not with what it leaves in the
build directory for the next job (the reviewer's reproductions, asserting the safe end)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.engine import Engine, docker_config, unique_runner
from tests.support.jobs import JobsRig, pipeline

pytestmark = pytest.mark.e2e


def _start(rig: JobsRig, engine: Engine) -> None:
    rig.runner(docker_config(rig.config(name=unique_runner(), concurrent=1), engine.host))


def _one_job(rig: JobsRig, name: str, variables: dict[str, str]) -> str:
    job = {"variables": variables, "script": ["true"]}
    project = rig.project(name, pipeline(only=job))
    project.git_init().commit("init")
    ids = rig.submit(project).jobs
    rig.wait_results(ids.values(), timeout=90)
    return rig.trace(ids["only"]).decode(errors="replace")


def test_a_job_bash_env_does_not_run_on_the_host(
    rig: JobsRig, engine: Engine, tmp_path: Path
) -> None:
    _start(rig, engine)
    marker = tmp_path / "host-bash-env"
    trace = _one_job(rig, "bashenv", {"BASH_ENV": f"$(touch {marker})"})
    assert "Job succeeded" in trace, trace
    assert not marker.exists(), "a docker job's BASH_ENV ran a command on the runner's host"


def test_a_job_git_config_does_not_run_on_the_host(
    rig: JobsRig, engine: Engine, tmp_path: Path
) -> None:
    _start(rig, engine)
    marker = tmp_path / "host-git-config"
    variables = {
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "core.fsmonitor",
        "GIT_CONFIG_VALUE_0": f"touch {marker}; false",
    }
    trace = _one_job(rig, "gitconfig", variables)
    # Refused before anything runs (it would change the fetch); the host stages' own
    # environment never carries it either (tests/executors/test_docker_host_stages.py).
    assert "GIT_CONFIG_COUNT: a container job's sources are fetched on the runner's host" in trace
    assert not marker.exists(), "a docker job's GIT_CONFIG_* ran a command on the runner's host"


def test_job_git_dir_and_work_tree_do_not_wipe_a_host_directory(
    rig: JobsRig, engine: Engine, tmp_path: Path
) -> None:
    _start(rig, engine)
    victim = tmp_path / "precious-env"
    victim.mkdir()
    (victim / "data.txt").write_text("keep me\n")
    variables = {"GIT_DIR": str(tmp_path / "g"), "GIT_WORK_TREE": str(victim)}
    trace = _one_job(rig, "gitdirenv", variables)
    assert "GIT_DIR, GIT_WORK_TREE: a container job's sources are fetched on the runner" in trace
    assert (victim / "data.txt").exists(), "a docker job's variables wiped a host directory"


def _two_jobs(rig: JobsRig, name: str, plant: list[str], victim: dict[str, object]) -> str:
    """A job that leaves `plant`'s changes in the build directory, then the next job of the
    project (the same directory, on the host for get_sources); return the second's trace."""
    jobs = {
        "plant": {"stage": "a", "script": plant},
        "victim": {"stage": "b", "script": ["true"], **victim},
    }
    project = rig.project(name, pipeline(["a", "b"], **jobs))
    project.git_init().commit("init")
    ids = rig.submit(project).jobs
    rig.wait_results(ids.values(), timeout=120)
    return rig.trace(ids["victim"]).decode(errors="replace")


PLANTED = "was changed to reach outside it"


def test_a_planted_gitfile_never_runs_its_config_in_the_next_job(
    rig: JobsRig, engine: Engine, tmp_path: Path
) -> None:
    _start(rig, engine)
    marker = tmp_path / "host-gitfile"
    plant = [
        "mv .git .evil",
        "echo 'gitdir: .evil' > .git",
        f"printf '[core]\\n\\tfsmonitor = touch {marker}; false\\n' >> .evil/config",
    ]
    trace = _two_jobs(rig, "gitfile", plant, {})
    assert not marker.exists(), "a config planted by a docker job ran on the runner's host"
    assert PLANTED in trace and "Job succeeded" in trace, trace


def test_a_planted_git_symlink_never_writes_outside_the_project(
    rig: JobsRig, engine: Engine, tmp_path: Path
) -> None:
    _start(rig, engine)
    victim = tmp_path / "victim"
    (victim / "hooks").mkdir(parents=True)
    (victim / "config").write_text("operator's file\n")
    (victim / "hooks" / "keep").write_text("keep\n")
    trace = _two_jobs(rig, "symlink", [f"rm -rf .git && ln -s {victim} .git"], {})
    assert (victim / "hooks" / "keep").exists(), "host files outside the project deleted"
    assert (victim / "config").read_text() == "operator's file\n"
    assert sorted(p.name for p in victim.iterdir()) == ["config", "hooks"]
    assert PLANTED in trace and "Job succeeded" in trace, trace


def test_a_lock_directory_and_a_planted_worktree_neither_wipe_the_host_nor_fail_the_job(
    rig: JobsRig, engine: Engine, tmp_path: Path
) -> None:
    """The retry's `git rm`/`git clean` ran before the config cleanup: a docker job's
    core.worktree made them delete a host directory; and a directory at a lock path made
    every later get_sources fail."""
    _start(rig, engine)
    victim = tmp_path / "precious"
    victim.mkdir()
    (victim / "data.txt").write_text("keep me\n")
    plant = [
        "mkdir .git/shallow.lock",
        f"printf '[core]\\n\\tworktree = {victim}\\n' >> .git/config",
    ]
    retry = {"GET_SOURCES_ATTEMPTS": "2", "FF_USE_EXPONENTIAL_BACKOFF_STAGE_RETRY": "false"}
    trace = _two_jobs(rig, "clearwt", plant, {"variables": retry})
    assert (victim / "data.txt").exists(), "a host directory outside the project was wiped"
    assert PLANTED in trace and "Job succeeded" in trace, trace
