"""Helpers of the pipeline tests: a real git repository, and reading pipelines for it."""

from __future__ import annotations

import subprocess
import textwrap
from collections.abc import Mapping
from pathlib import Path

import pytest

from alloy_runner.exceptions import PipelineError
from alloy_runner.pipeline.ci_yaml import JobSpec, PipelineSpec, parse_pipeline
from alloy_runner.pipeline.repo import Repo, read_repo


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True, timeout=20
    )
    return done.stdout.strip()


def make_repo(path: Path, files: Mapping[str, str], message: str = "first") -> Path:
    """A git repository on `main` whose one commit holds `files`."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "-c", "init.defaultBranch=main", "init", "-q")
    git(path, "config", "user.name", "Alloy Tests")
    git(path, "config", "user.email", "tests@alloy-runner.invalid")
    git(path, "config", "commit.gpgsign", "false")
    commit(path, files, message)
    return path


def commit(path: Path, files: Mapping[str, str], message: str) -> str:
    for name, text in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    git(path, "add", "-A")
    git(path, "commit", "-q", "--allow-empty", "-m", message)
    return git(path, "rev-parse", "HEAD")


def read(
    text: str,
    repo: Repo | None = None,
    run_vars: Mapping[str, str] | None = None,
    source: str = ".alloy-ci.yml",
) -> PipelineSpec:
    return parse_pipeline(textwrap.dedent(text).lstrip("\n"), source, repo, run_vars)


def names(spec: PipelineSpec) -> list[str]:
    return [j.name for j in spec.jobs]


def job(spec: PipelineSpec, name: str) -> JobSpec:
    return next(j for j in spec.jobs if j.name == name)


def error(text: str, repo: Repo | None = None, **kwargs: str) -> str:
    with pytest.raises(PipelineError) as caught:
        read(text, repo, kwargs or None)
    message = str(caught.value)
    assert "\n" not in message
    return message


def repo_at(path: Path, ref: str | None = None, source: str = "push") -> Repo:
    return read_repo(path, ref, source)
