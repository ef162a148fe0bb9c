"""The get_sources stage under each GIT_STRATEGY, on a generated repository.

Runs the stage's real script (operator.sources_script) in bash against a local
repository of COMMITS commits touching FILES files, and prints the median wall time of
each way against a fetch into the directory the previous job left (the baseline, in
the same run).

    .venv/bin/python benchmarks/bench_git_sources.py [--runs 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from alloy_runner.build import operator
from alloy_runner.build.job import GitInfo, Job, Step, Variable
from alloy_runner.config.model import ExecutorName, RunnerConfig

BASELINE = "fetch into the previous job's directory (baseline)"
COMMITS = 200
FILES = 400
ENV = {
    "PATH": os.environ["PATH"],
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@alloy-runner.invalid",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@alloy-runner.invalid",
}


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], env=ENV, capture_output=True, text=True)
    done.check_returncode()
    return done.stdout.strip()


def upstream(root: Path) -> Path:
    """A repository of COMMITS commits, each rewriting a tenth of FILES files."""
    repo = root / "upstream"
    repo.mkdir()
    git(repo, "-c", "init.defaultBranch=main", "init", "-q")
    for commit in range(COMMITS):
        for index in range(commit % 10, FILES, 10):
            (repo / f"file-{index}.txt").write_text(f"{commit} {index}\n" * 40)
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", f"commit {commit}")
    return repo


def job(repo: Path, depth: int = 0, **variables: str) -> Job:
    info = GitInfo(
        repo_url=repo.as_uri(),
        ref="main",
        sha=git(repo, "rev-parse", "HEAD"),
        refspecs=("+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*"),
        depth=depth,
    )
    variables_ = tuple(Variable(k, v) for k, v in variables.items())
    return Job(
        1,
        "t",
        "bench",
        "test",
        git_info=info,
        variables=variables_,
        steps=(Step("script", ("true",)),),
    )


def timed(body: str, project: Path) -> float:
    project.mkdir(exist_ok=True)
    began = time.perf_counter()
    subprocess.run(["bash", "-c", body], cwd=project, env=ENV, capture_output=True, check=True)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        repo = upstream(root)
        ways = {
            BASELINE: job(repo),
            "GIT_STRATEGY=clone": job(repo, GIT_STRATEGY="clone"),
            "GIT_STRATEGY=clone, GIT_DEPTH=1": job(repo, 1, GIT_STRATEGY="clone"),
            "GIT_STRATEGY=fetch, GIT_CLEAN_FLAGS=none": job(repo, GIT_CLEAN_FLAGS="none"),
            "GIT_STRATEGY=none": job(repo, GIT_STRATEGY="none"),
            "GIT_STRATEGY=empty": job(repo, GIT_STRATEGY="empty"),
            "GIT_SUBMODULE_STRATEGY=normal": job(repo, GIT_SUBMODULE_STRATEGY="normal"),
        }
        bodies: dict[str, str | None] = {
            name: operator.sources_script(j, RunnerConfig(name="r"), print)
            for name, j in ways.items()
        }
        docker = RunnerConfig(name="r", executor=ExecutorName.DOCKER)  # the host-git checks
        bodies["docker: fetch"] = operator.sources_script(job(repo), docker, print)
        bodies["docker: fetch, GIT_SUBMODULE_STRATEGY=normal"] = operator.sources_script(
            job(repo, GIT_SUBMODULE_STRATEGY="normal"), docker, print
        )
        results: dict[str, list[float]] = {name: [] for name in bodies}
        for _ in range(runs):
            for name, body in bodies.items():
                project, baseline = root / "project", bodies[BASELINE]
                assert body is not None and baseline is not None
                timed(baseline, project)  # each way starts where a previous job left off
                results[name].append(timed(body, project))
        base = statistics.median(results[BASELINE])
        print(f"repository: {COMMITS} commits, {FILES} files; {runs} runs each; median wall time")
        for name, times in results.items():
            median = statistics.median(times)
            print(f"  {name:<52} {median * 1000:8.1f} ms  x{median / base:5.2f}")


if __name__ == "__main__":
    main()
