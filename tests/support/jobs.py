"""Real jobs for tests: a spool, runner directories and git projects under one temporary root.

`JobsRig` owns everything a job test touches: the spool, `builds_dir`,
`cache_dir`, `TMPDIR`, the HOME of the CLI commands, and the `out/` directory
where jobs write what a test checks. Jobs that must block run
`BLOCK`, which returns once the test creates `out/release` (every blocked job)
or `out/release-ID` (job ID), and gives up with exit 3 after a minute, so a
failed test never leaves a job behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.support.polling import wait_until
from tests.support.runner import RunnerProcess, run_cli

SPOOL_DIRS = ("waiting", "pending", "running", "done")
FINAL_STATUSES = ("success", "failed", "canceled", "terminated", "timedout", "skipped")

WAIT_FOR_SCRIPT = """#!/bin/bash
# wait-for FILE...: return once one of the FILEs exists; give up (exit 3) after a minute.
for _ in $(seq 1200); do
  for file in "$@"; do
    [ -e "$file" ] && exit 0
  done
  sleep 0.05
done
exit 3
"""


@dataclass(frozen=True)
class Submitted:
    """What `alloy-runner submit` reported: the pipeline id and each job's id by name."""

    pipeline_id: int
    jobs: dict[str, int]

    @property
    def ids(self) -> list[int]:
        return sorted(self.jobs.values())


def parse_submitted(stdout: str, spool: Path | None = None) -> Submitted:
    """Read `submit --json`'s document: the pipeline, then each job's id, name and stage."""
    document = json.loads(stdout)
    assert set(document) == {"pipeline", "spool", "jobs"}, document
    assert isinstance(document["pipeline"], int), document
    if spool is not None:
        assert Path(document["spool"]) == spool, document
    jobs: dict[str, int] = {}
    for job in document["jobs"]:
        assert set(job) == {"id", "name", "stage", "allow_failure", "status"}, job
        assert isinstance(job["id"], int) and job["id"] > document["pipeline"], job
        assert job["name"] and job["stage"], job
        assert job["status"] in ("waiting", "pending", "running", *FINAL_STATUSES), job
        jobs[job["name"]] = job["id"]
    return Submitted(document["pipeline"], jobs)


def git(repo: Path, *args: str) -> str:
    """Run git in `repo` and return its stdout (stripped); fail on a non-zero exit."""
    done = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=False, timeout=20
    )
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
    return done.stdout.strip()


@dataclass
class Project:
    """A directory with a `.alloy-ci.yml`, optionally a git repository with commits."""

    path: Path

    @property
    def file(self) -> Path:
        return self.path / ".alloy-ci.yml"

    def write(self, pipeline: str) -> Project:
        self.file.write_text(pipeline, encoding="utf-8")
        return self

    def git_init(self) -> Project:
        git(self.path, "-c", "init.defaultBranch=main", "init", "-q")
        git(self.path, "config", "user.name", "Alloy Tests")
        git(self.path, "config", "user.email", "tests@alloy-runner.invalid")
        git(self.path, "config", "commit.gpgsign", "false")
        return self

    def commit(self, message: str) -> str:
        """Commit everything in the project; return the new HEAD sha."""
        git(self.path, "add", "-A")
        git(self.path, "commit", "-q", "-m", message)
        return git(self.path, "rev-parse", "HEAD")


@dataclass
class JobsRig:
    """One temporary root with a spool, runner directories, and helpers to drive jobs."""

    root: Path
    runner_name: str = "jobs"
    _runners: list[RunnerProcess] = field(default_factory=list)

    def __post_init__(self) -> None:
        for path in (self.home, self.spool, self.builds, self.cache, self.tmp, self.out):
            path.mkdir(parents=True, exist_ok=True)
        self.wait_for.write_text(WAIT_FOR_SCRIPT)
        self.wait_for.chmod(0o755)

    # --- places ---------------------------------------------------------------------------

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def spool(self) -> Path:
        return self.root / "spool"

    @property
    def builds(self) -> Path:
        return self.root / "builds"

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    @property
    def out(self) -> Path:
        """Where jobs write what the tests check (`$OUT` in every job)."""
        return self.root / "out"

    @property
    def wait_for(self) -> Path:
        return self.root / "wait-for"

    # --- the runner -----------------------------------------------------------------------

    def config(
        self,
        *,
        concurrent: int = 4,
        name: str | None = None,
        limit: int = 0,
        kill_timeout: float = 1.0,
        output_limit: int | None = None,
        shutdown_timeout: float = 20.0,
        spool_recovery: str | None = None,
        builds: Path | None = None,
    ) -> str:
        """Return a config.toml with one spool runner whose directories are in the rig."""
        lines = [
            f"concurrent = {concurrent}",
            f"shutdown_timeout = {shutdown_timeout}",
            f'spool_dir = "{self.spool}"',
        ]
        if spool_recovery is not None:
            lines.append(f'spool_recovery = "{spool_recovery}"')
        lines += [
            "",
            "[[runners]]",
            f'name = "{name or self.runner_name}"',
            f"limit = {limit}",
            f'builds_dir = "{builds or self.builds}"',
            f'cache_dir = "{self.cache}"',
            f"kill_timeout = {kill_timeout}",
            # Jobs find the rig through these, whatever their pipeline says.
            f'environment = ["OUT={self.out}", "WAIT_FOR={self.wait_for}"]',
        ]
        if output_limit is not None:
            lines.append(f"output_limit = {output_limit}")
        return "\n".join(lines) + "\n"

    def runner(self, config: str, **kwargs: Any) -> RunnerProcess:
        """Start `alloy-runner run` with `config`, in its own HOME under the rig."""
        home = self.root / f"runner-{len(self._runners)}"
        home.mkdir()
        env = {"TMPDIR": str(self.tmp), **kwargs.pop("env", {})}
        process = RunnerProcess(home, config, env=env, **kwargs)
        self._runners.append(process)
        return process.start()

    def stop_all(self) -> None:
        """Let every blocked job go, and kill every runner this rig started."""
        self.release()
        for process in self._runners:
            process.stop()
        for pid_file in self.out.glob("pgid-*"):
            pgid = int(pid_file.read_text().strip())
            # Only a job script of this rig (its scripts live in the rig's TMPDIR): the number
            # may belong to another process by now.
            if str(self.tmp) in _cmdline(pgid):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pgid, signal.SIGKILL)

    # --- the CLI --------------------------------------------------------------------------

    def project(self, name: str, pipeline: str) -> Project:
        path = self.root / "projects" / name
        path.mkdir(parents=True)
        return Project(path).write(pipeline)

    def cli(self, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        """Run `alloy-runner ARGS` with the rig's HOME."""
        return run_cli(list(args), self.home, env={"TMPDIR": str(self.tmp)}, timeout=timeout)

    def submit(self, project: Project, *args: str) -> Submitted:
        """Submit the project's pipeline into the rig's spool; fail unless it exits 0."""
        done = self.cli(
            "submit", "--json", "--file", str(project.file), "--spool", str(self.spool), *args
        )
        assert done.returncode == 0, done.stderr
        return parse_submitted(done.stdout, self.spool)

    def cancel(self, job_id: int) -> dict[str, Any]:
        """Cancel a job with `cancel --json`; return its document (id, result, status)."""
        done = self.cli("cancel", "--json", str(job_id), "--spool", str(self.spool))
        assert done.returncode == 0, done.stderr
        document = json.loads(done.stdout)
        assert isinstance(document, dict) and document["id"] == job_id, done.stdout
        return document

    # --- the spool ------------------------------------------------------------------------

    def done_dir(self, job_id: int) -> Path:
        return self.spool / "done" / str(job_id)

    def result(self, job_id: int) -> dict[str, Any] | None:
        try:
            return dict(json.loads((self.done_dir(job_id) / "result.json").read_text()))
        except FileNotFoundError:
            return None

    def wait_results(self, ids: Iterable[int], timeout: float = 30.0) -> dict[int, dict[str, Any]]:
        """Wait until every job of `ids` has a result.json; return them by id."""
        wanted = list(ids)

        def probe() -> dict[int, dict[str, Any]] | None:
            results = {i: self.result(i) for i in wanted}
            if all(r is not None for r in results.values()):
                return {i: r for i, r in results.items() if r is not None}
            return None

        return wait_until(probe, timeout, 0.05, f"results of jobs {wanted}")

    def trace(self, job_id: int) -> bytes:
        return (self.done_dir(job_id) / "trace.log").read_bytes()

    def counts(self) -> dict[str, int]:
        """Return how many jobs each of waiting/, pending/, running/ and done/ holds."""
        return {
            name: sum(
                1 for entry in os.scandir(self.spool / name) if not entry.name.startswith(".")
            )
            for name in SPOOL_DIRS
        }

    def wait_counts(self, expected: Mapping[str, int], timeout: float = 10.0) -> None:
        """Wait until the spool directories hold `expected` jobs.

        A finishing job is briefly in running/ and done/ both (done/ first, so that
        it is never in neither): right after its result appears, counts may lag.
        """
        wait_until(lambda: self.counts() == dict(expected), timeout, 0.05, f"spool {expected}")

    def in_dir(self, name: str) -> set[int]:
        """Return the ids of the jobs in spool directory `name`."""
        return {
            int(entry.name.removesuffix(".json"))
            for entry in os.scandir(self.spool / name)
            if entry.name.removesuffix(".json").isdigit()
        }

    def wait_started(self, ids: Sequence[int], timeout: float = 20.0) -> None:
        """Wait until each job of `ids` has run `touch "$OUT/started-$CI_JOB_ID"`."""
        wait_until(
            lambda: all((self.out / f"started-{i}").exists() for i in ids),
            timeout,
            0.05,
            f"jobs {list(ids)} in their build script",
        )

    def release(self, job_id: int | None = None) -> None:
        """Let blocked job `job_id` go on (None: every blocked job)."""
        (self.out / ("release" if job_id is None else f"release-{job_id}")).touch()


# Job script lines, for pipelines written in tests.
STARTED = 'touch "$OUT/started-$CI_JOB_ID"'
RECORD_PGID = 'echo $$ > "$OUT/pgid-$CI_JOB_ID"'  # the script's bash leads its process group
BLOCK = '"$WAIT_FOR" "$OUT/release" "$OUT/release-$CI_JOB_ID"'


def pipeline(stages: Sequence[str] | None = None, **jobs: Any) -> str:
    """Return a `.alloy-ci.yml` with `stages` (when given) and the jobs, in that order."""
    data: dict[str, Any] = {} if stages is None else {"stages": list(stages)}
    data.update(jobs)
    return yaml.safe_dump(data, sort_keys=False)


def process_alive(pid: int) -> bool:
    """Tell whether `pid` is a live process (a zombie, already dead, counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X")


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def pgrep(marker: str) -> list[int]:
    """Return the pids of live processes whose command line contains `marker`."""
    done = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True, check=False)
    return [int(p) for p in done.stdout.split() if process_alive(int(p))]


def wait_exit(process: RunnerProcess, timeout: float) -> tuple[int, float]:
    """Wait for the runner to exit; return its exit status and how long that took."""
    began = time.monotonic()
    code = process.wait(timeout)
    return code, time.monotonic() - began


def builds_series(families: Mapping[str, Any], runner: str) -> dict[tuple[str, str, str], float]:
    """Return `ci_runner_builds` of `runner` as {(stage, state, executor_stage): value}."""
    family = families.get("ci_runner_builds")
    assert family is not None, "ci_runner_builds is missing from /metrics"
    return {
        (s.labels["stage"], s.labels["state"], s.labels["executor_stage"]): float(s.value)
        for s in family.samples
        if s.labels.get("runner") == runner
    }
