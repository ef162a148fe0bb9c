"""`submit --dry-run` of a generated 2,000-job pipeline using extends, rules and a matrix.

Prints wall times of the real CLI (against `alloy-runner --version` as the baseline of
process start-up, in the same run) and of the in-process reading alone.

    .venv/bin/python benchmarks/bench_pipeline.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from alloy_runner.pipeline.ci_yaml import load_pipeline
from alloy_runner.pipeline.repo import read_repo

CLI = str(Path(sys.executable).with_name("alloy-runner"))
PLAIN_JOBS = 1800
MATRIX = (10, 20)  # 200 jobs, GitLab's limit for one job


def generate() -> str:
    """A pipeline of PLAIN_JOBS jobs on templates, plus one 200-job matrix: 2,000 jobs."""
    lines = [
        "stages: [build, test, deploy]",
        "variables:",
        "  PIP_CACHE_DIR: $CI_PROJECT_DIR/.cache/pip",
        "  DEPLOY_TARGET: staging",
        "default:",
        "  before_script: [echo setup]",
        "  retry: 1",
    ]
    for t in range(5):
        lines += [
            f".base-{t}:",
            "  stage: test",
            "  variables:",
            f"    LEVEL: '{t}'",
            f"    OUT: build/$CI_JOB_NAME/{t}",
            "  artifacts: {paths: [$OUT]}",
            "  rules:",
            "    - if: $CI_PIPELINE_SOURCE == 'schedule'",
            "      when: never",
            f"    - if: $CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH && $LEVEL =~ /^{t}$/",
            "    - when: manual",
        ]
    for i in range(PLAIN_JOBS):
        lines += [f"job-{i}:", f"  extends: .base-{i % 5}", f"  script: [echo {i}]"]
        if i % 10 == 9:
            lines.append(f"  needs: [job-{i - 1}]")
    rows, cols = MATRIX
    lines += [
        "matrix:",
        "  stage: deploy",
        "  script: [echo $A $B]",
        "  parallel:",
        "    matrix:",
        f"      - A: [{', '.join(f'a{i}' for i in range(rows))}]",
        f"        B: [{', '.join(f'b{i}' for i in range(cols))}]",
    ]
    return "\n".join(lines) + "\n"


def timed(command: list[str], runs: int) -> tuple[list[float], list[float]]:
    """Wall and CPU (user + system) seconds of each run of `command`."""
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        began = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        walls.append(time.perf_counter() - began)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return walls, cpus


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        file = project / ".alloy-ci.yml"
        file.write_text(generate())
        subprocess.run(
            ["git", "-C", tmp, "-c", "init.defaultBranch=main", "init", "-q"], check=True
        )
        subprocess.run(["git", "-C", tmp, "add", "-A"], check=True)
        subprocess.run(
            [
                "git",
                "-C",
                tmp,
                "-c",
                "user.name=b",
                "-c",
                "user.email=b@b.invalid",
                "commit",
                "-qm",
                "bench",
            ],
            check=True,
        )
        out = subprocess.run(
            [CLI, "submit", "--file", str(file), "--dry-run"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        jobs = out.splitlines()[0].rsplit(" ", 2)[-2]
        dry, dry_cpu = timed([CLI, "submit", "--file", str(file), "--dry-run"], runs)
        version, version_cpu = timed([CLI, "--version"], runs)
        inproc = []
        for _ in range(runs):
            began = time.perf_counter()
            spec = load_pipeline(file, read_repo(project))
            inproc.append(time.perf_counter() - began)
        assert len(spec.jobs) == int(jobs)
    med = statistics.median
    print(f"load average before/after: {load[0]:.2f} / {os.getloadavg()[0]:.2f}")
    print(f"file: {len(generate().splitlines())} lines, {jobs} jobs created")
    print(f"submit --dry-run (CLI): median {med(dry):.3f} s, max {max(dry):.3f} s ({runs} runs)")
    print(f"  CPU (user+sys): median {med(dry_cpu):.3f} s")
    print(
        f"alloy-runner --version (baseline): median {med(version):.3f} s,"
        f" CPU {med(version_cpu):.3f} s"
    )
    print(
        f"dry-run minus start-up: {med(dry) - med(version):.3f} s;"
        f" ratio {med(dry) / med(version):.2f}"
    )
    print(f"in-process load_pipeline: median {med(inproc):.3f} s, max {max(inproc):.3f} s")


if __name__ == "__main__":
    main()
