"""`alloy-runner exec shell JOB`: one job of the local pipeline, in the foreground."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from alloy_runner.build.build import Build, BuildPaths
from alloy_runner.build.ports import NoJobSpan, NoMetrics
from alloy_runner.build.states import BuildStage, BuildState
from alloy_runner.config.model import exec_runner
from alloy_runner.executors.shell import ShellExecutor
from alloy_runner.pipeline.checks import check_pipeline, check_variables
from alloy_runner.pipeline.ci_yaml import load_pipeline
from alloy_runner.pipeline.repo import read_repo
from alloy_runner.pipeline.submit import plan_jobs, select

if TYPE_CHECKING:
    from alloy_runner.build.build import BuildResult
    from alloy_runner.build.job import Artifact, Dependency, Job, Variable
    from alloy_runner.build.joblog import Sink

EXEC_RUNNER = "exec"
EXIT_SIGPIPE = 128 + signal.SIGPIPE  # what a shell reports for a writer killed by SIGPIPE


def _silence_stdout() -> None:
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


class ExecSource:
    """The JobSource of `exec`: the log goes to stdout, nothing goes anywhere else.

    When stdout fails (a closed pipe, a full disk), `on_output_error` is told once
    and the rest of the log is dropped: `exec` then cancels the job.
    """

    def __init__(self, on_output_error: Callable[[OSError], None] = lambda _e: None) -> None:
        self.artifacts: list[Path] = []
        self.output_error: OSError | None = None
        self._on_output_error = on_output_error

    async def request(self) -> Job | None:
        return None

    async def wait_for_jobs(self, timeout: float) -> None:
        await asyncio.sleep(timeout)

    def job_url(self, job: Job) -> str:
        return f"exec:{job.name}"

    def trace_sink(self, job: Job) -> Sink:
        out = sys.stdout.buffer

        def write(data: bytes) -> None:
            if self.output_error is not None:
                return
            try:
                out.write(data)
                out.flush()
            except OSError as exc:
                self.output_error = exc
                _silence_stdout()  # the interpreter's own flush at exit would fail again
                self._on_output_error(exc)

        return write

    async def started(self, job: Job) -> None:
        return None

    async def watch_cancel(self, job: Job) -> None:
        await asyncio.Event().wait()  # exec jobs are canceled with Ctrl-C only

    async def fetch_artifacts(self, job: Job, dependency: Dependency, dest: Path) -> bool:
        return False  # exec runs one job: there are no other jobs' artifacts

    async def upload_artifacts(self, job: Job, artifact: Artifact, archive: Path) -> None:
        self.artifacts.append(archive)

    async def finish(self, job: Job, result: BuildResult) -> None:
        return None


class Progress(NoJobSpan):
    """The stage-by-stage display of `exec` on a terminal: each stage as it starts and ends."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.began: dict[BuildStage, float] = {}

    def job_started(self, runner: str, job: Job, *, url: str = "", worker_id: str = "") -> Progress:
        return self

    def stage_started(self, stage: BuildStage) -> None:
        self.began[stage] = time.monotonic()
        print(f"\u25b6 {stage.value}", file=self.out, flush=True)

    def stage_finished(self, stage: BuildStage, ok: bool) -> None:
        seconds = time.monotonic() - self.began.get(stage, time.monotonic())
        mark = "\u2714" if ok else "\u2718"
        failed = "" if ok else " failed"
        print(f"{mark} {stage.value}{failed} ({seconds:.2f}s)", file=self.out, flush=True)


async def _run(build: Build) -> BuildResult:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, build.cancel)
    return await build.run()


def exec_job(
    name: str,
    file: Path,
    variables: list[Variable],
    builds_dir: Path | None,
    timeout: int | None,
) -> int:
    """Run the job called `name`; return 0 when it succeeds, 1 when it does not."""
    repo = read_repo(file.resolve().parent)
    spec = load_pipeline(file, repo, {v.key: v.value for v in variables})
    check_pipeline(spec, str(file))
    check_variables(variables)
    for warning in spec.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    (chosen,) = select(spec, [name])
    (planned,) = plan_jobs(
        [chosen],
        [1],
        pipeline_id=1,
        repo=repo,
        variables=variables,
        pipeline_variables=spec.variables,
    )
    job = planned.job
    if timeout is not None:
        job = dataclasses.replace(job, timeout=timeout)
    runner = exec_runner(builds_dir)
    paths = BuildPaths(builds_root=runner.builds_dir, cache_root=runner.cache_dir)
    source = ExecSource(lambda _exc: build.cancel())
    build = Build(
        job,
        runner,
        executor=ShellExecutor(runner.shell, runner.kill_timeout),
        source=source,
        metrics=NoMetrics(),
        paths=paths,
        tracer=Progress(sys.stderr) if sys.stderr.isatty() else None,
    )
    result = asyncio.run(_run(build))
    if source.output_error is not None:
        return _output_failed(source.output_error)
    reason = f" ({result.failure_reason.value})" if result.failure_reason else ""
    print(f"job {name}: {result.state.value}{reason} in {result.duration:.2f}s", file=sys.stderr)
    return 0 if result.state is BuildState.SUCCESS else 1


def _output_failed(exc: OSError) -> int:
    """Exit as a writer to a closed pipe would (silently, 141), or with one line (exit 1)."""
    if exc.errno == errno.EPIPE:
        return EXIT_SIGPIPE
    print(
        f"alloy-runner: error: cannot write the job log to stdout: {exc.strerror}", file=sys.stderr
    )
    return 1
