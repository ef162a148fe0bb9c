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
    assert "Job succeeded" in trace, trace
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
    assert "Job succeeded" in trace, trace
    assert (victim / "data.txt").exists(), "a docker job's variables wiped a host directory"
