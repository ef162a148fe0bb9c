"""The docker+machine and docker-ssh+machine executors: each build runs on a pooled machine."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import secrets
import shlex
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from alloy_runner.build.hostenv import host_environment
from alloy_runner.build.states import BuildStage, ExecutorStage
from alloy_runner.exceptions import MachineError
from alloy_runner.executors.base import ResourceUsage, ScriptResult, Workspace
from alloy_runner.executors.process import run_process_group
from alloy_runner.machines.provider import MachineProvider

if TYPE_CHECKING:
    from alloy_runner.build.job import Job

log = logging.getLogger(__name__)

CLEANUP_TIMEOUT = 60.0  # seconds the removal of a build's temporary directory may take
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class MachineExecutor:
    """Acquire a machine in prepare, run every stage script on it, release it in cleanup.

    A script reaches the machine on the stdin of the driver's shell command,
    wrapped in a group that reads nothing more from stdin. On a machine that
    does not share this host (`remote`), the job's variables travel as
    `export` lines in the script; this host's own environment stays here.
    """

    def __init__(self, provider: MachineProvider, name: str, kill_timeout: float = 10.0) -> None:
        self.name = name
        self._provider = provider
        self._kill_timeout = kill_timeout
        self._machine: str | None = None
        self._tmp: Path | None = None

    @property
    def machine(self) -> str | None:
        """Return the machine this build holds, if any."""
        return self._machine

    async def prepare(
        self,
        workspace_hint: Path,
        set_stage: Callable[[ExecutorStage], None],
        *,
        job: Job | None = None,
        output: Callable[[bytes], None] | None = None,
    ) -> Workspace:
        set_stage(ExecutorStage.DOCKER_MACHINE_USE_MACHINE)
        name = await self._provider.acquire()
        try:
            home = await self._provider.driver.home(name)
            self._provider.use(name)
            # builds_root/<runner>/<slot>/<project> on this host becomes home/builds/... there.
            project = home / "builds" / Path(*workspace_hint.parts[-3:])
            tmp = home / "tmp" / f"build-{secrets.token_hex(6)}"
            made = await self._script(
                name,
                f"mkdir -p {shlex.quote(str(project))} {shlex.quote(str(tmp))}\n",
                cwd=None,
                env=None,
                output=lambda _chunk: None,
                timeout=CLEANUP_TIMEOUT,
                cancel=asyncio.Event(),
            )
            if not made.ok:
                raise MachineError(f"machine {name}: cannot make the build directory {project}")
        except asyncio.CancelledError:
            self._provider.release(name)
            raise
        except BaseException:
            self._provider.release(name, broken=True)  # a machine that cannot take a build
            raise
        self._machine, self._tmp = name, tmp
        log.info("build runs on machine %s", name)
        return Workspace(project_dir=project, tmp_dir=tmp)

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
        if self._machine is None:
            raise MachineError("no machine: prepare did not run")
        return await self._script(
            self._machine,
            script,
            cwd=workspace.project_dir,
            env=env,
            output=output,
            timeout=timeout,
            cancel=cancel,
        )

    async def _script(
        self,
        machine: str,
        script: str,
        *,
        cwd: Path | None,
        env: Mapping[str, str] | None,
        output: Callable[[bytes], None],
        timeout: float | None,
        cancel: asyncio.Event,
    ) -> ScriptResult:
        shell = self._provider.driver.shell(machine)
        lines = []
        if shell.remote and env is not None:
            lines += [
                f"export {key}={shlex.quote(value)}"
                for key, value in env.items()
                if _NAME.fullmatch(key) and os.environ.get(key) != value
            ]
        if cwd is not None:
            lines.append(f"cd {shlex.quote(str(cwd))} || exit 1")
        # bash reads the whole group before it runs it, so no command can eat the script.
        lines += ["{", script, "} < /dev/null", ""]
        # The driver's own command (docker-machine ssh) gets the host's environment less the
        # runner's telemetry settings, as a job does.
        local_env = env if env is not None and not shell.remote else host_environment()
        return await run_process_group(
            shell.argv,
            cwd=shell.cwd,
            env=local_env,
            output=output,
            timeout=timeout,
            cancel=cancel,
            kill_timeout=self._kill_timeout,
            stdin="\n".join(lines).encode(),
        )

    async def cleanup(self, set_stage: Callable[[ExecutorStage], None]) -> None:
        set_stage(ExecutorStage.DOCKER_MACHINE_RELEASE_MACHINE)
        name, tmp = self._machine, self._tmp
        self._machine = self._tmp = None
        if name is None:
            return
        try:
            if tmp is not None:
                await self._script(
                    name,
                    f"rm -rf {shlex.quote(str(tmp))}\n",
                    cwd=None,
                    env=None,
                    output=lambda _chunk: None,
                    timeout=CLEANUP_TIMEOUT,
                    cancel=asyncio.Event(),
                )
        except Exception:
            log.warning("machine %s: cannot remove %s", name, tmp, exc_info=True)
        finally:
            self._provider.release(name)

    def usage(self) -> ResourceUsage | None:
        return None  # a machine's scripts run through its driver's shell, out of reach here
