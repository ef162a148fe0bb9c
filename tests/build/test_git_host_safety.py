"""For the container executors, get_sources runs git on the runner's HOST in a directory a
previous job (in a container) could change: the script never lets that job's .git run a
command, write or delete outside the project directory (the reviewer's reproductions), in
real bash against real git repositories."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from alloy_runner.build import attempts, operator
from alloy_runner.build.hostenv import host_stage_environment
from alloy_runner.build.job import GitInfo, Job, Variable
from alloy_runner.build.states import BuildStage
from alloy_runner.config.model import ExecutorName, HooksConfig, RunnerConfig
from alloy_runner.exceptions import ExecutorConfigError
from alloy_runner.executors.base import Outcome, ScriptResult
from tests.build.git_repos import Upstream, get_sources, git, job_for
from tests.support.fakes import make_job

DOCKER = RunnerConfig(name="r", executor=ExecutorName.DOCKER)
PLANTED = "was changed to reach outside it"


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    yield Upstream.create(tmp_path_factory.mktemp("upstream"))


def fetched(up: Upstream, project: Path, **variables: str) -> str:
    """A first get_sources (as a docker runner), whose result the test then tampers with."""
    done = get_sources(up, project, job_for(up, **variables), DOCKER)
    assert done.ok, done.output
    return done.output


def again(up: Upstream, project: Path, **variables: str) -> str:
    """The next job's get_sources: it must work, and check out the job's commit."""
    done = get_sources(up, project, job_for(up, **variables), DOCKER)
    assert done.ok, done.output
    assert git(project, up.env, "rev-parse", "HEAD") == up.head("main")
    return done.output


def fsmonitor(marker: Path) -> str:
    return f"[core]\n\tfsmonitor = touch {marker}; false\n"


def test_a_gitfile_planted_for_the_next_job_never_runs_its_config(
    up: Upstream, tmp_path: Path
) -> None:
    project, marker = tmp_path / "p", tmp_path / "host-gitfile"
    fetched(up, project)
    (project / ".git").rename(project / ".evil")
    (project / ".git").write_text("gitdir: .evil\n")
    with (project / ".evil" / "config").open("a") as config:
        config.write(fsmonitor(marker))
    output = again(up, project)
    assert not marker.exists(), "a config planted by a docker job ran on the runner's host"
    assert PLANTED in output
    assert not (project / ".evil").exists()  # the project directory was emptied
    assert (project / ".git").is_dir()


def test_a_git_symlink_never_makes_git_write_outside_the_project(
    up: Upstream, tmp_path: Path
) -> None:
    project, victim = tmp_path / "p", tmp_path / "victim"
    (victim / "hooks").mkdir(parents=True)
    (victim / "config").write_text("operator's file\n")
    (victim / "hooks" / "keep").write_text("keep\n")
    fetched(up, project)
    subprocess.run(["rm", "-rf", str(project / ".git")], check=True)
    (project / ".git").symlink_to(victim)
    output = again(up, project)
    assert (victim / "hooks" / "keep").exists(), "host files outside the project deleted"
    assert (victim / "config").read_text() == "operator's file\n"
    assert sorted(p.name for p in victim.iterdir()) == ["config", "hooks"]
    assert PLANTED in output
    assert not (project / ".git").is_symlink()


@pytest.mark.parametrize(
    "plant",
    ["commondir", "objects/info/alternates", "symlink", "shallow.lock", "refs/heads/x.lock"],
)
def test_what_makes_git_read_another_directory_empties_the_project(
    up: Upstream, tmp_path: Path, plant: str
) -> None:
    project, elsewhere = tmp_path / "p", tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "config").write_text(fsmonitor(tmp_path / "ran"))
    fetched(up, project)
    (project / "left.txt").write_text("from the previous job\n")
    if plant == "symlink":
        (project / ".git" / "info" / "linked").symlink_to(elsewhere)
    elif plant.endswith(".lock"):  # a directory: `rm -f` fails, and would for every job
        (project / ".git" / plant).mkdir(parents=True)
    else:
        (project / ".git" / plant).write_text(f"{elsewhere}\n")
    output = again(up, project)
    assert PLANTED in output
    assert not (project / "left.txt").exists()
    assert sorted(p.name for p in elsewhere.iterdir()) == ["config"]
    assert not (tmp_path / "ran").exists()


def test_a_submodule_gitfile_outside_git_modules_never_runs_its_config(
    up: Upstream, tmp_path: Path
) -> None:
    project, marker = tmp_path / "p", tmp_path / "host-submodule"
    fetched(up, project, GIT_SUBMODULE_STRATEGY="normal")
    evil = project / ".git" / "evilsub"
    (project / ".git" / "modules" / "sub").rename(evil)
    (project / "sub" / ".git").write_text("gitdir: ../.git/evilsub\n")
    with (evil / "config").open("a") as config:
        config.write(fsmonitor(marker))
    output = again(up, project, GIT_SUBMODULE_STRATEGY="normal")
    assert not marker.exists(), "a submodule's planted config ran on the runner's host"
    assert PLANTED in output
    assert (project / "sub" / "sub.txt").exists()
    assert (project / "sub" / ".git").read_text() == "gitdir: ../.git/modules/sub\n"


def test_legit_submodules_are_kept_and_not_refetched(up: Upstream, tmp_path: Path) -> None:
    project = tmp_path / "p"
    fetched(up, project, GIT_SUBMODULE_STRATEGY="recursive")
    (project / ".git" / "alloy-marker").write_text("the old .git\n")
    output = again(up, project, GIT_SUBMODULE_STRATEGY="recursive")
    assert PLANTED not in output
    assert (project / ".git" / "alloy-marker").exists()
    assert (project / "sub" / "deep" / "nested.txt").exists()


def test_the_host_git_ignores_a_fsmonitor_set_after_the_cleanup(
    up: Upstream, tmp_path: Path
) -> None:
    """The operator's hooks run outside the script's `git` function: the host stage's
    environment (build/hostenv.py, with the runner's own GIT_CONFIG_* first) still makes
    every git ignore a repository's fsmonitor, nested gits too."""
    project, marker = tmp_path / "p", tmp_path / "ran"
    fetched(up, project, GIT_SUBMODULE_STRATEGY="normal")
    command = f"touch {marker}; false"
    post = (
        f"git config core.fsmonitor '{command}'\n"
        f"git -C sub config core.fsmonitor '{command}'\n"
        "git status --short >/dev/null\n"
        "git submodule foreach git status --short\n"
    )
    runner = RunnerConfig(
        name="r",
        executor=ExecutorName.DOCKER,
        hooks=HooksConfig(post_get_sources_script=post),
    )
    job = job_for(up, GIT_SUBMODULE_STRATEGY="normal")
    done = get_sources(up, project, job, runner, host_stage_environment({}, up.env))
    assert done.ok, done.output
    assert not marker.exists()


def test_the_retry_clear_worktree_never_runs_a_planted_config(up: Upstream, tmp_path: Path) -> None:
    """The retry's `git rm`/`git clean` ran before the cleanup of a planted config: its
    core.worktree made them delete a host directory."""
    project, victim = tmp_path / "p", tmp_path / "precious"
    victim.mkdir()
    (victim / "data.txt").write_text("keep me\n")
    fetched(up, project)
    with (project / ".git" / "config").open("a") as config:
        config.write(f"[core]\n\tworktree = {victim}\n")
    job = job_for(up, GET_SOURCES_ATTEMPTS="2")
    outputs: list[str] = []

    async def script() -> str | None:
        return operator.sources_script(job, DOCKER, lambda _line: None)

    async def execute(body: str) -> ScriptResult:
        if not outputs:  # the first attempt fails (as a job can make it: a planted lock)
            outputs.append("")
            return ScriptResult(Outcome.EXITED, 1)
        done = subprocess.run(
            ["bash", "-c", body], cwd=project, env=up.env, capture_output=True, text=True
        )
        outputs.append(done.stdout + done.stderr)
        return ScriptResult(Outcome.EXITED, done.returncode)

    async def no_wait(_seconds: float, _stop: asyncio.Event) -> bool:
        return True

    settings = attempts.settings(job, DOCKER)
    result = asyncio.run(
        attempts.run(
            BuildStage.GET_SOURCES,
            settings,
            script,
            execute,
            log=lambda _line: None,
            stop=asyncio.Event(),
            wait=no_wait,
        )
    )
    assert result is not None and result.ok, outputs[-1]
    assert "Deleting tracked and untracked files..." in outputs[-1]
    assert (victim / "data.txt").exists(), "a host directory outside the project was wiped"
    assert (project / "main.txt").read_text() == "two\n"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("GIT_FETCH_EXTRA_FLAGS", "--upload-pack=touch${IFS}/x;git-upload-pack"),
        ("GIT_FETCH_EXTRA_FLAGS", "--prune --upl=touch${IFS}/x;git-upload-pack"),
        ("GIT_FETCH_EXTRA_FLAGS", "--upload-pack touch"),
        ("GIT_FETCH_EXTRA_FLAGS", "--exec=x"),
        ("GIT_FETCH_EXTRA_FLAGS", "-u"),
        ("GIT_SUBMODULE_UPDATE_FLAGS", "--reference=/srv/other/.git"),
        ("GIT_SUBMODULE_UPDATE_FLAGS", "--config=core.fsmonitor=x"),
        ("GIT_SUBMODULE_UPDATE_FLAGS", "-c"),
    ],
)
def test_options_that_run_a_program_on_the_host_fail_a_docker_job(
    tmp_path: Path, name: str, value: str
) -> None:
    job = job_for_flags(**{name: value, "GIT_SUBMODULE_STRATEGY": "normal"})
    lines: list[str] = []
    with pytest.raises(ExecutorConfigError, match=f"^{name}: .* is refused: .*host"):
        operator.feature_flags_at_start(job, DOCKER, lines.append)
    operator.feature_flags_at_start(job, RunnerConfig(name="r"), lines.append)  # shell: as ever


def test_a_docker_job_git_variable_that_would_change_its_fetch_is_refused() -> None:
    """A job's GIT_SSL_NO_VERIFY does not reach the host's git: the job is refused, not fetched
    otherwise than it asked; a shell runner's job keeps it (its git runs with its variables)."""
    job = job_for_flags(GIT_SSL_NO_VERIFY="1", GIT_STRATEGY="fetch")
    with pytest.raises(ExecutorConfigError, match=r"^GIT_SSL_NO_VERIFY: .*runner's host"):
        operator.feature_flags_at_start(job, DOCKER, lambda _line: None)
    operator.feature_flags_at_start(job, RunnerConfig(name="r"), lambda _line: None)


def test_a_docker_job_git_trace_is_warned_and_its_author_name_passes() -> None:
    """GIT_TRACE only makes git's log verbose: a warning; GIT_AUTHOR_NAME is for the job's
    own git in its containers, where it still goes: nothing said."""
    job = job_for_flags(GIT_TRACE="1", GIT_AUTHOR_NAME="ci")
    lines: list[str] = []
    operator.feature_flags_at_start(job, DOCKER, lines.append)
    assert [line for line in lines if "GIT_" in line and "not passed" in line] == [
        "WARNING: GIT_TRACE: a container job's sources are fetched on the runner's host, "
        "where the job's git variables are not passed; git's log is not more verbose"
    ]


@pytest.mark.parametrize(
    "value", ["--prune --quiet", "--depth 50 --tags", "--refetch --update-shallow -v", "none"]
)
def test_harmless_fetch_flags_still_run(value: str) -> None:
    job = job_for_flags(GIT_FETCH_EXTRA_FLAGS=value, GIT_SUBMODULE_UPDATE_FLAGS="--remote -N")
    operator.feature_flags_at_start(job, DOCKER, lambda _line: None)


def test_a_refused_upload_pack_never_runs(up: Upstream, tmp_path: Path) -> None:
    """The reviewer's: with a file:// URL, --upload-pack ran its command on the host."""
    marker, program = tmp_path / "upload-pack-ran", tmp_path / "upload-pack"
    program.write_text(f'#!/bin/sh\ntouch {marker}\nexec git-upload-pack "$@"\n')
    program.chmod(0o755)
    job = job_for(up, GIT_FETCH_EXTRA_FLAGS=f"--prune --upload-pack={program}")
    with pytest.raises(ExecutorConfigError):
        operator.feature_flags_at_start(job, DOCKER, lambda _line: None)
    assert get_sources(up, tmp_path / "shell", job).ok  # the shell executor: its own host
    assert marker.exists()  # what the check stops for a docker runner


def job_for_flags(**variables: str) -> Job:
    return make_job(
        git_info=GitInfo(repo_url="https://git.test/p.git", sha="a" * 40),
        variables=tuple(Variable(k, v) for k, v in variables.items()),
    )


@pytest.mark.parametrize("executor", [ExecutorName.SHELL, ExecutorName.DOCKER])
def test_a_directory_at_a_lock_path_fails_no_later_job(
    up: Upstream, tmp_path: Path, executor: ExecutorName
) -> None:
    project = tmp_path / "p"
    runner = RunnerConfig(name="r", executor=executor)
    assert get_sources(up, project, job_for(up), runner).ok
    for lock in ("shallow.lock", "index.lock", "refs/heads/x.lock"):
        (project / ".git" / lock).mkdir()
        (project / ".git" / lock / "inside").write_text("x\n")
    for _ in range(2):
        done = get_sources(up, project, job_for(up), runner)
        assert done.ok, done.output
    assert not (project / ".git" / "shallow.lock").exists()
    assert git(project, up.env, "rev-parse", "HEAD") == up.head("main")
