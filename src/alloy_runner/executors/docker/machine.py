"""The docker+machine executor: each build takes a pooled machine and runs in its engine.

A machine is a Docker engine. The `docker-machine` driver gives its address
and TLS (`docker-machine config`); a `local` machine uses the runner's own
engine (`[runners.docker] host`, else DOCKER_HOST). On it, the build runs in
containers exactly as under the docker executor.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from alloy_runner.build.states import BuildStage, ExecutorStage
from alloy_runner.exceptions import ExecutorConfigError, ImagePullError
from alloy_runner.executors.base import ResourceUsage, ScriptResult, Workspace
from alloy_runner.executors.docker.engine import EngineAddress
from alloy_runner.executors.docker.executor import DockerExecutor
from alloy_runner.machines.drivers.local import LocalDriver

if TYPE_CHECKING:
    from alloy_runner.build.job import Job
    from alloy_runner.config.model import RunnerConfig
    from alloy_runner.machines.provider import MachineProvider

log = logging.getLogger(__name__)

# Failures of the job, not of the machine: the machine goes back to the pool.
_JOB_FAILURES = (ImagePullError, ExecutorConfigError)


class DockerMachineExecutor:
    """Acquire a machine in prepare, run the build in its engine, release it in cleanup."""

    def __init__(self, provider: MachineProvider, runner: RunnerConfig) -> None:
        self.name = str(runner.executor)
        self._provider = provider
        self._runner = runner
        self._machine: str | None = None
        self._inner: DockerExecutor | None = None

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
        broken = False
        try:
            driver = self._provider.driver
            engine = await driver.engine(name)
            self._provider.use(name)
            if output is not None:
                output(f"Running on machine {name} ...\n".encode())
            docker = self._runner.docker
            address = EngineAddress(
                engine.host or docker.host,
                engine.tls_verify if engine.host else docker.tls_verify,
                engine.tls_cert_path if engine.host else docker.tls_cert_path,
            )
            if isinstance(driver, LocalDriver):  # the machine's directory holds its builds
                workspace_hint = (
                    await driver.home(name) / "builds" / Path(*workspace_hint.parts[-3:])
                )
            self._inner = DockerExecutor(self._runner, address=address, name=self.name)
            workspace = await self._inner.prepare(workspace_hint, set_stage, job=job, output=output)
        except asyncio.CancelledError:
            self._provider.release(name)
            raise
        except _JOB_FAILURES:
            self._provider.release(name)
            raise
        except BaseException:
            broken = True  # a machine whose engine cannot take a build
            raise
        finally:
            if broken:
                self._provider.release(name, broken=True)
        self._machine = name
        log.info("build runs on machine %s", name)
        return workspace

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
        assert self._inner is not None, "prepare did not run"
        return await self._inner.run(
            script,
            workspace=workspace,
            env=env,
            output=output,
            timeout=timeout,
            cancel=cancel,
            stage=stage,
        )

    async def cleanup(self, set_stage: Callable[[ExecutorStage], None]) -> None:
        if self._inner is not None:
            await self._inner.cleanup(set_stage)
        set_stage(ExecutorStage.DOCKER_MACHINE_RELEASE_MACHINE)
        name, self._machine = self._machine, None
        if name is not None:
            self._provider.release(name)

    def usage(self) -> ResourceUsage | None:
        return self._inner.usage() if self._inner is not None else None
