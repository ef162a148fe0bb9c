"""The stages the docker executors run on the runner's host get a controlled environment:
the job's variables never become the host shell's or the host git's (build/hostenv.py)."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import pytest

from alloy_runner.build.hostenv import host_stage_environment
from alloy_runner.build.states import BuildStage
from alloy_runner.config.model import ExecutorName, RunnerConfig
from alloy_runner.executors.base import ScriptResult, Workspace
from alloy_runner.executors.docker.executor import HOST_STAGES, DockerExecutor


def host_stage(tmp_path: Path, script: str, env: dict[str, str]) -> tuple[ScriptResult, str]:
    executor = DockerExecutor(RunnerConfig(name="d", executor=ExecutorName.DOCKER))
    project, tmp = tmp_path / "project", tmp_path / "tmp"
    project.mkdir(exist_ok=True)
    tmp.mkdir(exist_ok=True)
    out = bytearray()
    result = asyncio.run(
        executor.run(
            script,
            workspace=Workspace(project_dir=project, tmp_dir=tmp),
            env=env,
            output=out.extend,
            timeout=30.0,
            cancel=asyncio.Event(),
            stage=BuildStage.GET_SOURCES,
        )
    )
    return result, out.decode()


def job_env(**job: str) -> dict[str, str]:
    """The job's environment as build/environment.py makes it: the host's, then the job's."""
    return {**os.environ, "CI_JOB_ID": "7", "CI_PROJECT_DIR": "/builds/p", **job}


def test_a_job_bash_env_does_not_run_on_the_host(tmp_path: Path) -> None:
    marker = tmp_path / "bash-env-ran"
    env = job_env(BASH_ENV=f"$(touch {marker})", ENV=f"$(touch {marker})")
    result, _ = host_stage(tmp_path, "true\n", env)
    assert result.ok
    assert not marker.exists()


def test_a_job_git_config_does_not_reach_the_host_git(tmp_path: Path) -> None:
    marker = tmp_path / "fsmonitor-ran"
    env = job_env(
        GIT_CONFIG_COUNT="2",
        GIT_CONFIG_KEY_0="core.fsmonitor",
        GIT_CONFIG_VALUE_0=f"touch {marker}; false",
        GIT_CONFIG_KEY_1="alias.status",
        GIT_CONFIG_VALUE_1="!touch " + str(marker),
    )
    script = "git init -q . && touch f && git add f && git status --short\n"
    result, _ = host_stage(tmp_path, script, env)
    assert result.ok
    assert not marker.exists()


def test_job_git_dir_and_work_tree_do_not_reach_the_host_git(tmp_path: Path) -> None:
    victim = tmp_path / "precious"
    victim.mkdir()
    (victim / "data.txt").write_text("keep me\n")
    env = job_env(GIT_DIR=str(tmp_path / "g"), GIT_WORK_TREE=str(victim))
    result, _ = host_stage(tmp_path, "git init -q . && git clean -ffdxq\n", env)
    assert result.ok
    assert (victim / "data.txt").read_text() == "keep me\n"


def test_the_host_stage_sees_the_runner_path_and_the_job_ci_variables(tmp_path: Path) -> None:
    env = job_env(PATH="/nowhere", LD_PRELOAD="/tmp/evil.so", PYTHONPATH="/x", MY_VAR="job")
    script = 'echo "path=$PATH ld=${LD_PRELOAD-unset} py=${PYTHONPATH-unset}"\n'
    script += 'echo "mine=${MY_VAR-unset} id=$CI_JOB_ID fsmonitor=$(git config core.fsmonitor)"\n'
    result, out = host_stage(tmp_path, script, env)
    assert result.ok, out
    assert f"path={os.environ['PATH']} ld=unset py=unset" in out
    assert "mine=unset id=7 fsmonitor=false" in out


def test_only_ci_and_gitlab_variables_of_the_job_pass() -> None:
    runner = {"PATH": "/usr/bin", "HOME": "/root", "LC_ALL": "C", "BASH_ENV": "/x", "FOO": "1"}
    job = {
        "CI_JOB_TOKEN": "t",
        "GITLAB_USER_LOGIN": "u",
        "GIT_DIR": "/x",
        "GIT_CONFIG_COUNT": "9",
        "LD_PRELOAD": "/x.so",
        "PYTHONSTARTUP": "/x.py",
        "PATH": "/evil",
        "HOME": "/evil",
        "BASH_ENV": "/x",
        "ENV": "/x",
        "SHELLOPTS": "xtrace",
        "MY_SECRET": "s",
    }
    env = host_stage_environment(job, runner)
    assert env == {
        "PATH": "/usr/bin",
        "HOME": "/root",
        "LC_ALL": "C",
        "CI_JOB_TOKEN": "t",
        "GITLAB_USER_LOGIN": "u",
        "GIT_CONFIG_COUNT": "3",
        "GIT_CONFIG_KEY_0": "core.fsmonitor",
        "GIT_CONFIG_VALUE_0": "false",
        "GIT_CONFIG_KEY_1": "core.hooksPath",
        "GIT_CONFIG_VALUE_1": "/dev/null",
        "GIT_CONFIG_KEY_2": "protocol.ext.allow",
        "GIT_CONFIG_VALUE_2": "never",
    }


@pytest.mark.parametrize("stage", HOST_STAGES)
def test_every_host_stage_gets_the_controlled_environment(
    tmp_path: Path, stage: BuildStage
) -> None:
    executor = DockerExecutor(RunnerConfig(name="d", executor=ExecutorName.DOCKER))
    out = bytearray()
    asyncio.run(
        executor.run(
            'echo "x=${MY_VAR-unset}"\n',
            workspace=Workspace(project_dir=tmp_path, tmp_dir=tmp_path),
            env=job_env(MY_VAR="job"),
            output=out.extend,
            timeout=30.0,
            cancel=asyncio.Event(),
            stage=stage,
        )
    )
    assert b"x=unset" in out


def test_git_in_a_host_stage_ignores_a_repository_fsmonitor(tmp_path: Path) -> None:
    marker = tmp_path / "repo-fsmonitor-ran"
    project = tmp_path / "project"
    subprocess.run(["git", "init", "-q", str(project)], check=True)
    subprocess.run(
        ["git", "-C", str(project), "config", "core.fsmonitor", f"touch {marker}; false"],
        check=True,
    )
    result, out = host_stage(tmp_path, "git status --short\ngit submodule foreach true\n", {})
    assert result.ok, out
    assert not marker.exists()


def test_the_runner_own_git_config_is_kept_before_the_protections() -> None:
    runner = {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "http.sslCAInfo"}
    runner["GIT_CONFIG_VALUE_0"] = "/etc/ca.pem"
    env = host_stage_environment({"GIT_CONFIG_COUNT": "5", "GIT_CONFIG_KEY_4": "x"}, runner)
    assert env["GIT_CONFIG_COUNT"] == "4"
    assert (env["GIT_CONFIG_KEY_0"], env["GIT_CONFIG_VALUE_0"]) == ("http.sslCAInfo", "/etc/ca.pem")
    assert env["GIT_CONFIG_KEY_1"] == "core.fsmonitor"
    assert "GIT_CONFIG_KEY_4" not in env


def test_the_host_script_is_not_written_where_the_container_writes(tmp_path: Path) -> None:
    """The build's tmp directory is mounted in the job's container: a symlink planted there
    at the host script's name must not be followed, nor the script read from there."""
    victim = tmp_path / "victim.txt"
    victim.write_text("operator's file\n")
    (tmp_path / "tmp").mkdir()
    for stage in HOST_STAGES:
        (tmp_path / "tmp" / f"host-{stage.value}.sh").symlink_to(victim)
    result, out = host_stage(tmp_path, "echo ran-on-host\n", job_env())
    assert result.ok and "ran-on-host" in out
    assert victim.read_text() == "operator's file\n"


def test_cleanup_removes_the_host_scripts(tmp_path: Path) -> None:
    executor = DockerExecutor(RunnerConfig(name="d", executor=ExecutorName.DOCKER))
    asyncio.run(
        executor.run(
            "true\n",
            workspace=Workspace(project_dir=tmp_path, tmp_dir=tmp_path),
            env={},
            output=lambda _chunk: None,
            timeout=30.0,
            cancel=asyncio.Event(),
            stage=BuildStage.GET_SOURCES,
        )
    )
    private = executor._private
    assert private is not None and (private / "host-get_sources.sh").exists()
    assert not (tmp_path / "host-get_sources.sh").exists()
    asyncio.run(executor.cleanup(lambda _stage: None))
    assert not private.exists()


def test_the_uploaded_archives_are_written_where_no_container_reaches(tmp_path: Path) -> None:
    """The build's tmp directory is mounted in the job's containers; the artifacts the runner
    uploads go elsewhere, so a job cannot swap them for a symlink to a host file."""
    executor = DockerExecutor(RunnerConfig(name="d", executor=ExecutorName.DOCKER))
    workspace = executor._directories(tmp_path / "r" / "0" / "p")
    try:
        archives = workspace.archives_dir
        assert archives is not None and archives.is_dir()
        assert archives.stat().st_mode & 0o077 == 0  # the runner's only
        mounted = [Path(d) for d in executor._host_dirs]
        assert workspace.tmp_dir in mounted
        assert all(archives != d and d not in archives.parents for d in mounted)
    finally:
        asyncio.run(executor.cleanup(lambda _stage: None))
    assert not archives.exists()


class _Container:
    """A build container that says when it was removed (its processes ended)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker
        self.name = "build"

    def remove(self, force: bool = False, v: bool = False) -> None:
        self.marker.write_text("removed")


@pytest.mark.parametrize("stage", [BuildStage.ARCHIVE_CACHE, BuildStage.UPLOAD_ARTIFACTS])
def test_the_job_container_is_gone_before_the_host_reads_its_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stage: BuildStage
) -> None:
    """Archiving on the host starts after the build container is removed: no process of the
    job's can swap a path it checks for a symlink to a host file while it reads."""
    monkeypatch.setattr("alloy_runner.executors.docker.containers.usage_of", lambda *a: None)
    executor = DockerExecutor(RunnerConfig(name="d", executor=ExecutorName.DOCKER))
    marker = tmp_path / "removed"
    executor._container = _Container(marker)  # type: ignore[assignment]
    project = tmp_path / "project"
    project.mkdir()
    out = bytearray()
    result = asyncio.run(
        executor.run(
            f"test -e {marker}\n",
            workspace=Workspace(project_dir=project, tmp_dir=tmp_path),
            env=job_env(),
            output=out.extend,
            timeout=30.0,
            cancel=asyncio.Event(),
            stage=stage,
        )
    )
    assert result.ok, out.decode()
    assert executor._container is None
