"""The shell executor: each stage script is a bash process group on this host."""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from alloy_runner.build.states import BuildStage, ExecutorStage
from alloy_runner.executors import rusage
from alloy_runner.executors.base import ResourceUsage, ScriptResult, Workspace
from alloy_runner.executors.orphans import ENV_KEY, kill_job_processes
from alloy_runner.executors.process import RunAs, run_process_group

if TYPE_CHECKING:
    from alloy_runner.build.job import Job

log = logging.getLogger(__name__)


class ShellExecutor:
    """Run stage scripts with bash in a per-build project directory.

    Every script runs in a new session, so the whole process group can be
    stopped: TERM first, KILL after `kill_timeout` seconds.
    """

    name = "shell"

    def __init__(
        self, shell: str = "bash", kill_timeout: float = 10.0, user: RunAs | None = None
    ) -> None:
        self._shell = shell
        self._kill_timeout = kill_timeout
        self._user = user  # `run --user`: scripts run as this user, in directories it owns
        self._tmp: Path | None = None
        self._job_url: str | None = None  # the marker in the environment of every job process
        self._used: list[ResourceUsage] = []  # what each stage's process tree used

    async def prepare(
        self,
        workspace_hint: Path,
        set_stage: Callable[[ExecutorStage], None],
        *,
        job: Job | None = None,
        output: Callable[[bytes], None] | None = None,
    ) -> Workspace:
        set_stage(ExecutorStage.PREPARE)
        workspace_hint.mkdir(parents=True, exist_ok=True)
        self._tmp = Path(tempfile.mkdtemp(prefix="alloy-build-"))
        if self._user is not None:
            for path in (workspace_hint, self._tmp):
                self._user.chown(path)
        return Workspace(project_dir=workspace_hint, tmp_dir=self._tmp)

    async def run(
        self,
        script: str,
        *,
        workspace: Workspace,
        env: Mapping[str, str],
        output: Callable[[bytes], None],
        timeout: float | None,
        cancel: asyncio.Event,
        stage: BuildStage = BuildStage.BUILD_SCRIPT,
    ) -> ScriptResult:
        self._job_url = env.get(ENV_KEY, self._job_url)
        path = workspace.tmp_dir / "script.sh"
        path.write_text(script)
        if self._user is not None:
            self._user.chown(path)
            user = self._user
            env = {**env, "HOME": user.home, "USER": user.name, "LOGNAME": user.name}
        # bash reads no startup files; dash (sh on Debian) has no such options and reads none.
        flags = ("--noprofile", "--norc") if Path(self._shell).name == "bash" else ()
        return await run_process_group(
            (self._shell, *flags, str(path)),
            cwd=workspace.project_dir,
            env=env,
            output=output,
            timeout=timeout,
            cancel=cancel,
            kill_timeout=self._kill_timeout,
            usage=self._used,
            user=self._user,
        )

    async def cleanup(self, set_stage: Callable[[ExecutorStage], None]) -> None:
        set_stage(ExecutorStage.CLEANUP)
        job_url, self._job_url = self._job_url, None
        if job_url is not None:
            # A process that left the script's session (`setsid cmd &`) outlives its group:
            # it still carries the job's marker, so it is found and stopped here.
            stopped = await asyncio.to_thread(kill_job_processes, job_url)
            if stopped:
                log.info("job %s: stopped %d process(es) it left running", job_url, stopped)
        tmp, self._tmp = self._tmp, None
        if tmp is not None:
            await asyncio.to_thread(_remove_tree, tmp)

    def usage(self) -> ResourceUsage | None:
        return rusage.combine(self._used)


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
