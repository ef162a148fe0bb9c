"""`alloy-runner exec shell JOB`: one job of the local pipeline, in the foreground."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from alloy_runner.build.build import Build, BuildPaths
from alloy_runner.build.ports import NoMetrics
from alloy_runner.build.states import BuildStage, BuildState
from alloy_runner.config.model import exec_runner
from alloy_runner.executors.shell import ShellExecutor
from alloy_runner.pipeline.ci_yaml import load_pipeline
from alloy_runner.pipeline.submit import git_info_of, plan_jobs, select

if TYPE_CHECKING:
    from alloy_runner.build.build import BuildResult
    from alloy_runner.build.job import Artifact, Dependency, Job, Variable
    from alloy_runner.build.joblog import Sink


class ExecSource:
    """The JobSource of `exec`: the log goes to stdout, nothing goes anywhere else."""

    def __init__(self) -> None:
        self.artifacts: list[Path] = []

    async def request(self) -> Job | None:
        return None

    async def wait_for_jobs(self, timeout: float) -> None:
        await asyncio.sleep(timeout)

    def job_url(self, job: Job) -> str:
        return f"exec:{job.name}"

    def trace_sink(self, job: Job) -> Sink:
        out = sys.stdout.buffer

        def write(data: bytes) -> None:
            out.write(data)
            out.flush()

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


class Progress(NoMetrics):
    """Show each stage on stderr as it ends."""

    def stage_finished(self, runner: str, stage: BuildStage, seconds: float) -> None:
        print(f"\u2714 {stage.value} ({seconds:.2f}s)", file=sys.stderr, flush=True)


async def _watch_stages(build: Build) -> None:
    shown: BuildStage | None = None
    while True:
        if build.stage is not shown and build.state is BuildState.RUNNING:
            shown = build.stage
            print(f"\u25b6 {shown.value}", file=sys.stderr, flush=True)
        await asyncio.sleep(0.05)


async def _run(build: Build) -> BuildResult:
    watcher = asyncio.create_task(_watch_stages(build))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, build.cancel)
    try:
        return await build.run()
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher


def exec_job(
    name: str,
    file: Path,
    variables: list[Variable],
    builds_dir: Path | None,
    timeout: int | None,
) -> int:
    """Run the job called `name`; return 0 when it succeeds, 1 when it does not."""
    spec = load_pipeline(file)
    for warning in spec.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    project_dir = file.resolve().parent
    (chosen,) = select(spec, [name])
    (planned,) = plan_jobs(
        [chosen],
        [1],
        pipeline_id=1,
        git=git_info_of(project_dir),
        project=project_dir.name,
        variables=variables,
    )
    job = planned.job
    if timeout is not None:
        job = dataclasses.replace(job, timeout=timeout)
    runner = exec_runner(builds_dir)
    paths = BuildPaths(builds_root=runner.builds_dir, cache_root=runner.cache_dir)
    build = Build(
        job,
        runner,
        executor=ShellExecutor(runner.shell, runner.kill_timeout),
        source=ExecSource(),
        metrics=Progress(),
        paths=paths,
    )
    result = asyncio.run(_run(build))
    reason = f" ({result.failure_reason.value})" if result.failure_reason else ""
    print(f"job {name}: {result.state.value}{reason} in {result.duration:.2f}s", file=sys.stderr)
    return 0 if result.state is BuildState.SUCCESS else 1
