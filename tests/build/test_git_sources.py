"""The get_sources stage honours a job's GIT_* variables as GitLab Runner does: the stage's
script from operator.sources_script, run in real bash against real git repositories, and
the work tree it leaves checked (files, HEAD, submodules), not the script's text."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from alloy_runner.config.model import ExecutorName, HooksConfig, RunnerConfig
from tests.build.git_repos import Upstream, get_sources, git, job_for


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    yield Upstream.create(tmp_path_factory.mktemp("upstream"))


def head(up: Upstream, project: Path) -> str:
    return git(project, up.env, "rev-parse", "HEAD")


def fetched_twice(up: Upstream, project: Path, **variables: str) -> str:
    """Fetch once, leave traces of a previous job (an untracked file, a file in .git), then
    run get_sources again with `variables`; return that second run's output."""
    assert get_sources(up, project, job_for(up)).ok
    (project / "left.txt").write_text("from a previous job\n")
    (project / ".git" / "alloy-marker").write_text("the old .git\n")
    second = get_sources(up, project, job_for(up, **variables))
    assert second.ok, second.output
    return second.output


def test_fetch_is_the_default_keeps_git_and_cleans_the_tree(up: Upstream, tmp_path: Path) -> None:
    output = fetched_twice(up, tmp_path / "p")
    assert head(up, tmp_path / "p") == up.head("main")
    assert (tmp_path / "p" / ".git" / "alloy-marker").exists()  # the same repository
    assert not (tmp_path / "p" / "left.txt").exists()  # git clean -ffdx
    assert (tmp_path / "p" / "main.txt").read_text() == "two\n"
    assert "Fetching changes..." in output
    assert f"Checking out {up.head('main')[:8]} as detached HEAD (ref is main)..." in output
    assert "Skipping Git submodules setup" in output
    assert not (tmp_path / "p" / "sub" / "sub.txt").exists()  # submodules: none by default


def test_clone_starts_from_a_fresh_repository(up: Upstream, tmp_path: Path) -> None:
    output = fetched_twice(up, tmp_path / "p", GIT_STRATEGY="clone")
    assert head(up, tmp_path / "p") == up.head("main")
    assert not (tmp_path / "p" / ".git" / "alloy-marker").exists()
    assert not (tmp_path / "p" / "left.txt").exists()
    assert "Created fresh repository." in output


def test_a_project_that_does_not_allow_fetch_clones(up: Upstream, tmp_path: Path) -> None:
    """allow_git_fetch false in the payload (the project's strategy): clone by default."""
    project = tmp_path / "p"
    assert get_sources(up, project, job_for(up)).ok
    (project / ".git" / "alloy-marker").write_text("the old .git\n")
    job = replace(job_for(up), allow_git_fetch=False)
    assert get_sources(up, project, job).ok
    assert not (project / ".git" / "alloy-marker").exists()
    assert head(up, project) == up.head("main")


def test_none_sets_up_no_repository_and_touches_nothing(up: Upstream, tmp_path: Path) -> None:
    project = tmp_path / "p"
    project.mkdir()
    (project / "kept.txt").write_text("mine\n")
    hooks = HooksConfig(pre_get_sources_script="touch pre-hook")
    fetched = get_sources(
        up, project, job_for(up, GIT_STRATEGY="none"), RunnerConfig(name="r", hooks=hooks)
    )
    assert fetched.ok, fetched.output
    assert sorted(p.name for p in project.iterdir()) == ["kept.txt"]  # no .git, no hook
    for line in ("Skipping Git repository setup", "Skipping Git checkout"):
        assert line in fetched.output
    assert "Skipping Git submodules setup" in fetched.output


def test_the_hooks_run_with_fetch(up: Upstream, tmp_path: Path) -> None:
    hooks = HooksConfig(pre_get_sources_script="touch ../pre-hook")
    assert get_sources(up, tmp_path / "p", job_for(up), RunnerConfig(name="r", hooks=hooks)).ok
    assert (tmp_path / "pre-hook").exists()


def test_empty_leaves_an_empty_directory(up: Upstream, tmp_path: Path) -> None:
    project = tmp_path / "p"
    assert get_sources(up, project, job_for(up)).ok
    fetched = get_sources(up, project, job_for(up, GIT_STRATEGY="empty"))
    assert fetched.ok, fetched.output
    assert list(project.iterdir()) == []
    assert "Skipping Git repository setup and creating an empty build directory" in fetched.output


def _plant_hooks(project: Path, record: Path) -> None:
    """A job's hooks: git runs reference-transaction at each ref update (checkout too)."""
    for git_dir in (project / ".git", project / ".git" / "modules" / "sub"):
        hook = git_dir / "hooks" / "reference-transaction"
        hook.parent.mkdir(exist_ok=True)
        hook.write_text(f"#!/bin/sh\necho {git_dir.name} >> {record}\n")
        hook.chmod(0o755)


@pytest.mark.parametrize("executor", [ExecutorName.SHELL, ExecutorName.DOCKER])
def test_git_hooks_a_container_job_leaves_never_run_on_the_host(
    up: Upstream, tmp_path: Path, executor: ExecutorName
) -> None:
    """As GitLab Runner: the repository's configs and hooks go before git runs, but for the
    shell executor (whose jobs run on the host anyway)."""
    project, record = tmp_path / "p", tmp_path / "hooks-ran"
    runner = RunnerConfig(name="r", executor=executor)
    job = job_for(up, GIT_SUBMODULE_STRATEGY="recursive")
    assert get_sources(up, project, job, runner).ok
    _plant_hooks(project, record)
    again = get_sources(up, project, job, runner)
    assert again.ok, again.output
    assert record.exists() is (executor is ExecutorName.SHELL)
    assert head(up, project) == up.head("main")
    assert (project / "sub" / "deep" / "nested.txt").exists()
    assert head(up, project / "sub") == up.head("sub")


def test_an_unknown_strategy_is_fetch(up: Upstream, tmp_path: Path) -> None:
    fetched = fetched_twice(up, tmp_path / "p", GIT_STRATEGY="bogus")
    assert (tmp_path / "p" / ".git" / "alloy-marker").exists()
    assert "Fetching changes..." in fetched


def test_git_checkout_false_fetches_without_checking_out(up: Upstream, tmp_path: Path) -> None:
    project = tmp_path / "p"
    fetched = get_sources(up, project, job_for(up, GIT_CHECKOUT="false"))
    assert fetched.ok, fetched.output
    assert "Skipping Git checkout" in fetched.output
    assert not (project / "main.txt").exists()
    assert git(project, up.env, "rev-parse", "origin/main") == up.head("main")


@pytest.mark.parametrize(
    ("flags", "left"),
    [
        ("none", {"left.txt", "ignored.log"}),
        ("-fdx -e left.txt", {"left.txt"}),
        ("-fd", {"ignored.log"}),
    ],
)
def test_git_clean_flags(up: Upstream, tmp_path: Path, flags: str, left: set[str]) -> None:
    project = tmp_path / "p"
    assert get_sources(up, project, job_for(up)).ok
    (project / "left.txt").write_text("untracked\n")
    (project / "ignored.log").write_text("ignored\n")
    assert get_sources(up, project, job_for(up, GIT_CLEAN_FLAGS=flags)).ok
    assert {p for p in ("left.txt", "ignored.log") if (project / p).exists()} == left


def test_fetch_prunes_by_default_and_not_with_other_fetch_flags(
    up: Upstream, tmp_path: Path
) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    for project in (first, second):
        assert get_sources(up, project, job_for(up)).ok
        assert git(project, up.env, "branch", "-r", "--list", "origin/gone")
    git(up.repo("main"), up.env, "branch", "-D", "gone")
    try:
        assert get_sources(up, first, job_for(up)).ok
        assert get_sources(up, second, job_for(up, GIT_FETCH_EXTRA_FLAGS="--quiet")).ok
    finally:
        git(up.repo("main"), up.env, "branch", "gone", "v1")
    assert not git(first, up.env, "branch", "-r", "--list", "origin/gone")  # --prune
    assert git(second, up.env, "branch", "-r", "--list", "origin/gone")


def test_git_depth_makes_a_shallow_fetch_and_no_depth_unshallows(
    up: Upstream, tmp_path: Path
) -> None:
    project = tmp_path / "p"
    fetched = get_sources(up, project, job_for(up, 1))
    assert fetched.ok, fetched.output
    assert "Fetching changes with git depth set to 1..." in fetched.output
    assert (project / ".git" / "shallow").exists()
    assert git(project, up.env, "rev-list", "--count", "HEAD") == "1"
    assert get_sources(up, project, job_for(up)).ok
    assert not (project / ".git" / "shallow").exists()
    assert git(project, up.env, "rev-list", "--count", "HEAD") == git(
        up.repo("main"), up.env, "rev-list", "--count", "HEAD"
    )


def test_submodules_normal_checks_out_the_first_level_only(up: Upstream, tmp_path: Path) -> None:
    project = tmp_path / "p"
    fetched = get_sources(up, project, job_for(up, GIT_SUBMODULE_STRATEGY="normal"))
    assert fetched.ok, fetched.output
    assert "Updating/initializing submodules..." in fetched.output
    assert (project / "sub" / "sub.txt").exists() and (project / "other" / "other.txt").exists()
    assert not (project / "sub" / "deep" / "nested.txt").exists()
    assert head(up, project / "sub") == up.head("sub")


def test_submodules_recursive_checks_out_nested_ones(up: Upstream, tmp_path: Path) -> None:
    project = tmp_path / "p"
    fetched = get_sources(up, project, job_for(up, GIT_SUBMODULE_STRATEGY="recursive"))
    assert fetched.ok, fetched.output
    assert "Updating/initializing submodules recursively..." in fetched.output
    assert (project / "sub" / "deep" / "nested.txt").read_text() == "nested\n"
    assert head(up, project / "sub" / "deep") == up.head("nested")
    (project / "sub" / "deep" / "stray.txt").write_text("left in a submodule\n")
    (project / "sub" / "sub.txt").write_text("changed in a submodule\n")
    again = get_sources(up, project, job_for(up, GIT_SUBMODULE_STRATEGY="recursive"))
    assert again.ok, again.output
    assert not (project / "sub" / "deep" / "stray.txt").exists()  # cleaned
    assert (project / "sub" / "sub.txt").read_text() == "sub\n"  # reset


def test_submodule_paths_and_depth(up: Upstream, tmp_path: Path) -> None:
    project = tmp_path / "p"
    job = job_for(
        up, GIT_SUBMODULE_STRATEGY="normal", GIT_SUBMODULE_PATHS="other", GIT_SUBMODULE_DEPTH="1"
    )
    fetched = get_sources(up, project, job)
    assert fetched.ok, fetched.output
    assert "Updating/initializing submodules with git depth set to 1..." in fetched.output
    assert (project / "other" / "other.txt").exists()
    assert not (project / "sub" / "sub.txt").exists()
    assert (Path(git(project / "other", up.env, "rev-parse", "--git-dir")) / "shallow").exists()


def test_submodule_update_flags_are_passed_to_the_update(up: Upstream, tmp_path: Path) -> None:
    """--remote: the submodule's branch tip, not the commit main records."""
    other = up.repo("other")
    recorded = up.head("other")
    (other / "other.txt").write_text("newer\n")
    git(other, up.env, "commit", "-q", "-am", "other: newer")
    try:
        project = tmp_path / "p"
        job = job_for(up, GIT_SUBMODULE_STRATEGY="normal", GIT_SUBMODULE_UPDATE_FLAGS="--remote")
        assert get_sources(up, project, job).ok
        assert head(up, project / "other") == up.head("other") != recorded
        plain = get_sources(up, tmp_path / "q", job_for(up, GIT_SUBMODULE_STRATEGY="normal"))
        assert plain.ok
        assert head(up, tmp_path / "q" / "other") == recorded
    finally:
        git(other, up.env, "reset", "-q", "--hard", recorded)


def test_git_strategy_none_skips_submodules_whatever_they_ask(up: Upstream, tmp_path: Path) -> None:
    job = job_for(up, GIT_STRATEGY="none", GIT_SUBMODULE_STRATEGY="recursive")
    fetched = get_sources(up, tmp_path / "p", job)
    assert fetched.ok and "Skipping Git submodules setup" in fetched.output
    assert list((tmp_path / "p").iterdir()) == []


def _fake_git_lfs(tmp_path: Path) -> dict[str, str]:
    """git-lfs is not installed here: a git-lfs on PATH that records how git calls it."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "git-lfs"
    record = tmp_path / "lfs-calls"
    tool.write_text(f'#!/bin/bash\necho "$* smudge=$GIT_LFS_SKIP_SMUDGE" >> {record}\n')
    tool.chmod(0o755)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}"}


def test_lfs_objects_are_pulled_after_checkout_unless_smudge_is_skipped(
    up: Upstream, tmp_path: Path
) -> None:
    env = _fake_git_lfs(tmp_path)
    assert get_sources(up, tmp_path / "p", job_for(up), env=env).ok
    assert (tmp_path / "lfs-calls").read_text().splitlines() == [
        "version smudge=1",
        "pull smudge=1",
    ]
    (tmp_path / "lfs-calls").unlink()
    job = job_for(up, GIT_LFS_SKIP_SMUDGE="1")
    assert get_sources(up, tmp_path / "q", job, env={**env, "GIT_LFS_SKIP_SMUDGE": "1"}).ok
    assert not (tmp_path / "lfs-calls").exists()


def test_values_from_the_job_are_never_run_by_the_shell(up: Upstream, tmp_path: Path) -> None:
    project = tmp_path / "p"
    job = job_for(
        up,
        GIT_CLEAN_FLAGS="-ffdx -e $(touch${IFS}../pwned1) -e ;touch${IFS}../pwned2",
        GIT_FETCH_EXTRA_FLAGS="--quiet `touch ../pwned3`",
    )
    get_sources(up, project, job)
    assert not any((tmp_path / f"pwned{i}").exists() for i in (1, 2, 3))
