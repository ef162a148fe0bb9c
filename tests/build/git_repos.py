"""Real upstream git repositories for the get_sources tests, and a runner of the stage's
script in real bash.

`main` has two commits, the submodules `sub` (which has its own submodule `deep`, on
`nested`) and `other`, a tag, and a branch `gone` a test can delete upstream.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from alloy_runner.build import operator
from alloy_runner.build.job import GitInfo, Job, Variable
from alloy_runner.config.model import RunnerConfig
from tests.support.fakes import make_job


def git_env(home: Path) -> dict[str, str]:
    """An environment for git that ignores the machine's config and allows file:// submodules
    (git refuses them by default since 2.38.1; GitLab's submodules are never local)."""
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "protocol.file.allow",
        "GIT_CONFIG_VALUE_0": "always",
        "GIT_AUTHOR_NAME": "Alloy Tests",
        "GIT_AUTHOR_EMAIL": "tests@alloy-runner.invalid",
        "GIT_COMMITTER_NAME": "Alloy Tests",
        "GIT_COMMITTER_EMAIL": "tests@alloy-runner.invalid",
    }


def git(repo: Path, env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
    return done.stdout.strip()


@dataclass
class Upstream:
    root: Path
    env: dict[str, str]

    def repo(self, name: str) -> Path:
        return self.root / name

    def url(self, name: str) -> str:
        return self.repo(name).as_uri()

    def head(self, name: str) -> str:
        return git(self.repo(name), self.env, "rev-parse", "HEAD")

    @classmethod
    def empty(cls, root: Path) -> Upstream:
        """A place for upstream repositories, with no repository yet."""
        home = root / "home"
        home.mkdir(parents=True)
        return cls(root, git_env(home))

    def new(self, name: str, files: dict[str, str]) -> Path:
        """A repository `name` with one commit of `files`."""
        path = self.repo(name)
        path.mkdir(parents=True)
        git(path, self.env, "-c", "init.defaultBranch=main", "init", "-q")
        for file, text in files.items():
            (path / file).write_text(text)
        git(path, self.env, "add", "-A")
        git(path, self.env, "commit", "-q", "-m", f"{name}: first")
        return path

    def add_submodule(self, repo: Path, name: str, path: str) -> None:
        """Add repository `name` to `repo` as a submodule at `path`, and commit."""
        git(repo, self.env, "submodule", "add", "-q", self.url(name), path)
        git(repo, self.env, "commit", "-q", "-m", f"submodule {path}")

    @classmethod
    def create(cls, root: Path) -> Upstream:
        up = cls.empty(root)
        up.new("nested", {"nested.txt": "nested\n"})
        sub = up.new("sub", {"sub.txt": "sub\n"})
        up.add_submodule(sub, "nested", "deep")
        up.new("other", {"other.txt": "other\n"})
        main = up.new("main", {"main.txt": "one\n", ".gitignore": "ignored.log\n"})
        up.add_submodule(main, "sub", "sub")
        up.add_submodule(main, "other", "other")
        git(main, up.env, "tag", "v1")
        git(main, up.env, "branch", "gone")
        (main / "main.txt").write_text("two\n")
        git(main, up.env, "commit", "-q", "-am", "main: second")
        return up


@dataclass
class Fetched:
    """What one get_sources stage did: its exit code, its output and the runner's log lines."""

    code: int
    output: str
    log: list[str]

    @property
    def ok(self) -> bool:
        return self.code == 0


def job_for(up: Upstream, depth: int = 0, /, **variables: str) -> Job:
    """A job fetching `main` (git_info.depth `depth`) with `variables`."""
    info = GitInfo(
        repo_url=up.url("main"),
        ref="main",
        sha=up.head("main"),
        refspecs=("+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*"),
        depth=depth,
    )
    return make_job(git_info=info, variables=tuple(Variable(k, v) for k, v in variables.items()))


def get_sources(
    up: Upstream,
    project: Path,
    job: Job,
    runner: RunnerConfig | None = None,
    env: dict[str, str] | None = None,
) -> Fetched:
    """Run the job's get_sources script in real bash in `project`, as an executor would."""
    log: list[str] = []
    body = operator.sources_script(job, runner or RunnerConfig(name="r"), log.append)
    assert body is not None
    project.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["bash", "-c", body],
        cwd=project,
        env={**up.env, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    return Fetched(done.returncode, done.stdout + done.stderr, log)
