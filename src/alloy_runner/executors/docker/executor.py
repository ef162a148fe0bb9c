"""The docker executor: the job's scripts run in containers of its image, beside its services.

Where each stage runs (docs/executors.md): `build_script` runs by `exec` in a
build container of the job's image, and `after_script` in a fresh container of
the same image. Fetching sources, caches and artifacts runs on the runner's
host, with the host's git and helper, in the build directory that is mounted
into the containers: so they work with images that have no git, and no helper
image has to exist on the engine. Those stages get a controlled environment, not the
job's (build/hostenv.py: host_stage_environment).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import docker
import docker.errors
from docker.models.containers import Container
from docker.types import Mount

from alloy_runner.build import attempts
from alloy_runner.build.hostenv import host_stage_environment
from alloy_runner.build.states import BuildStage, ExecutorStage
from alloy_runner.exceptions import ExecutorConfigError, ExecutorError
from alloy_runner.executors import rusage
from alloy_runner.executors.base import ResourceUsage, ScriptResult, Workspace
from alloy_runner.executors.docker import containers, sections, services, sync
from alloy_runner.executors.docker.engine import UNREACHABLE, EngineAddress, call, connect, labels
from alloy_runner.executors.docker.images import check_image, ensure_image, pull_policies
from alloy_runner.executors.docker.names import object_name
from alloy_runner.executors.process import run_process_group

if TYPE_CHECKING:
    from alloy_runner.build.job import Job
    from alloy_runner.config.model import RunnerConfig

log = logging.getLogger(__name__)

# Stages that run on the runner's host, in the mounted build directory.
HOST_STAGES = (
    BuildStage.GET_SOURCES,
    BuildStage.RESTORE_CACHE,
    BuildStage.DOWNLOAD_ARTIFACTS,
    BuildStage.ARCHIVE_CACHE,
    BuildStage.UPLOAD_ARTIFACTS,
)
# Host stages that read what the job's containers wrote. The build container is removed
# first (every process of the job's ends), as GitLab Runner's ends with its script: a
# process left running could swap a checked path for a symlink to a host file while the
# host archives it.
READ_AFTER_SCRIPTS = (BuildStage.ARCHIVE_CACHE, BuildStage.UPLOAD_ARTIFACTS)
BUILDS = PurePosixPath("/builds")


def _ignore(_stage: ExecutorStage) -> None:
    pass


class DockerExecutor:
    """Run a build in containers on one Docker engine (`[runners.docker]`)."""

    def __init__(
        self,
        runner: RunnerConfig,
        *,
        address: EngineAddress | None = None,
        name: str = "docker",
    ) -> None:
        self.name = name
        self._runner = runner
        self._config = runner.docker
        self._address = address or EngineAddress(
            runner.docker.host, runner.docker.tls_verify, runner.docker.tls_cert_path
        )
        self._client: docker.DockerClient | None = None
        self._set_stage: Callable[[ExecutorStage], None] = _ignore
        self._job_id = 0
        self._image = ""
        self._entrypoint: list[str] | None = None
        self._network: str | None = None
        self._services: list[services.Running] = []
        self._container: Container | None = None
        self._tmp: Path | None = None
        self._private: Path | None = None  # the host stages' scripts and archives, not mounted
        self._host_dirs: tuple[str, str] = ("", "")
        self._inside: tuple[str, str] = ("", "")
        self._mounts: dict[str, Any] = {}
        self._scripts = 0
        self._scratch: list[str] = []  # the build's own volumes, removed with it
        self._job_keys: set[str] = set()  # variables the job or the runner's config set
        self._copy = not self._address.is_local  # the engine cannot bind-mount our directory
        self._dirty = True  # the host's build directory changed since the container's copy
        self._used: list[ResourceUsage] = []
        self._sections = 1  # EXECUTOR_JOB_SECTION_ATTEMPTS (sections.py)

    # --- prepare ------------------------------------------------------------------------

    async def prepare(
        self,
        workspace_hint: Path,
        set_stage: Callable[[ExecutorStage], None],
        *,
        job: Job | None = None,
        output: Callable[[bytes], None] | None = None,
    ) -> Workspace:
        set_stage(ExecutorStage.DOCKER_PREPARE)
        self._set_stage = set_stage
        write = output or (lambda _chunk: None)

        def say(line: str) -> None:
            write(f"{line}\n".encode())

        try:
            return await self._prepare(workspace_hint, job, say)
        except BaseException:
            await self.cleanup(_ignore)
            raise

    async def _prepare(
        self, workspace_hint: Path, job: Job | None, say: Callable[[str], None]
    ) -> Workspace:
        self._job_id = job.id if job is not None else 0
        self._sections = attempts.settings(job, self._runner).section if job is not None else 1
        self._job_keys = {e.partition("=")[0] for e in self._runner.environment}
        self._job_keys |= {v.key for v in job.variables} if job is not None else set()
        chosen = job.image if job is not None else None
        self._image = chosen.name if chosen is not None else self._config.image
        if not self._image:
            raise ExecutorConfigError("the job has no image: and [runners.docker] image is not set")
        if chosen is not None:
            check_image(self._image, self._config, "job's")
            if chosen.entrypoint is not None:
                self._entrypoint = [e for e in chosen.entrypoint if e] or [""]
        wanted = [(self._image, pull_policies(chosen.pull_policy if chosen else (), self._config))]
        for service in job.services if job is not None else ():
            check_image(service.name, self._config, "service")
            wanted.append((service.name, pull_policies(service.pull_policy, self._config)))
        self._client = client = await connect(self._address)
        say(f"Using Docker executor with image {self._image} ...")
        self._set_stage(ExecutorStage.DOCKER_PULLING_IMAGE)
        for image, policies in wanted:
            await ensure_image(client, image, policies, say)
        self._set_stage(ExecutorStage.DOCKER_CREATING_BUILD_VOLUMES)
        workspace = await call(self._directories, workspace_hint)
        await self._volumes(client, workspace_hint.name)
        if not self._config.network_mode:
            self._network = object_name(self._runner.name, self._job_id, secrets.token_hex(4))
            await call(
                client.networks.create,
                self._network,
                driver="bridge",
                labels=labels(self._runner.name, self._job_id, "network"),
            )
        if job is not None and job.services:
            self._set_stage(ExecutorStage.DOCKER_CREATING_SERVICES)
            await self._start_services(client, job, say)
        return workspace

    def _directories(self, workspace_hint: Path) -> Workspace:
        workspace_hint.mkdir(parents=True, exist_ok=True)
        self._tmp = Path(tempfile.mkdtemp(prefix="alloy-build-"))
        self._private = Path(tempfile.mkdtemp(prefix="alloy-host-"))  # never mounted
        inside = BUILDS.joinpath(*workspace_hint.parts[-3:])
        self._host_dirs = (str(workspace_hint), str(self._tmp))
        self._inside = (str(inside), f"{inside}.tmp")
        return Workspace(workspace_hint, self._tmp, archives_dir=self._private)

    async def _volumes(self, client: docker.DockerClient, project: str) -> None:
        prefix = object_name(self._runner.name, self._job_id, f"vol-{secrets.token_hex(4)}")
        binds, mounts, caches, scratch = containers.user_volumes(
            self._config, self._runner.name, project, prefix
        )
        own = [
            f"{host}:{inside}" for host, inside in zip(self._host_dirs, self._inside, strict=True)
        ]
        if self._copy:  # the build directory is a volume of the build (executors/docker/sync.py)
            own = []
            scratch.append(f"{prefix}-builds")
            mounts.append(Mount(target=str(BUILDS), source=scratch[-1], type="volume"))
        if caches or scratch:
            self._set_stage(ExecutorStage.DOCKER_CREATING_USER_VOLUMES)
        for volume in caches:
            await call(
                containers.ensure_volume, client, volume, labels(self._runner.name, None, "cache")
            )
        for volume in scratch:  # the build's own: removed with it
            self._scratch.append(volume)
            marks = labels(self._runner.name, self._job_id, "volume")
            await call(client.volumes.create, volume, labels=marks)
        self._mounts = {"volumes": [*own, *binds], "mounts": mounts}

    async def _start_services(
        self, client: docker.DockerClient, job: Job, say: Callable[[str], None]
    ) -> None:
        env = {v.key: v.value for v in job.variables if not v.file}
        options = {**containers.resources(self._config), "labels": {}}
        for index, service in enumerate(job.services):
            say(f"Starting service {service.name} ...")
            options["labels"] = labels(self._runner.name, self._job_id, "service")
            name = object_name(self._runner.name, self._job_id, f"svc-{index}")
            try:
                running = await call(
                    services.create,
                    client,
                    service,
                    name=name,
                    network=self._network,
                    env=env,
                    options=options,
                )
            except docker.errors.APIError as exc:
                raise ExecutorError(
                    f"cannot start service {service.name}: {exc.explanation}"
                ) from None
            self._services.append(running)
        say("Waiting for services to be up and running ...")
        timeout, local = self._config.wait_for_services_timeout, self._address.is_local
        await services.wait_all(self._services, self._network, timeout, say, local=local)

    # --- run ----------------------------------------------------------------------------

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
        if stage in HOST_STAGES:
            if stage in READ_AFTER_SCRIPTS:
                await self._retire()  # no process of the job's changes what the host reads
            self._dirty = True
            # Not in the build's tmp directory: a job's container can write there (a symlink
            # this write would follow, a script rewritten before bash reads it).
            if self._private is None:
                self._private = Path(tempfile.mkdtemp(prefix="alloy-host-"))
            path = self._private / f"host-{stage.value}.sh"
            path.write_text(script)
            return await run_process_group(
                ("bash", "--noprofile", "--norc", str(path)),
                cwd=workspace.project_dir,
                env=host_stage_environment(env),  # never the job's own (build/hostenv.py)
                output=output,
                timeout=timeout,
                cancel=cancel,
                kill_timeout=self._runner.kill_timeout,
            )
        self._set_stage(ExecutorStage.DOCKER_RUN)

        async def once(left: float | None) -> ScriptResult:  # a run gets what is left
            return await self._in_container(
                script, stage, env=env, output=output, timeout=left, cancel=cancel
            )

        say = functools.partial(sections.say, output)
        run = functools.partial(sections.run, timeout=timeout, cancel=cancel)
        try:
            return await run(once, self._sections, stage, say, self._forget)
        except (*UNREACHABLE, docker.errors.APIError) as exc:
            raise ExecutorError(
                f"the Docker engine failed the {stage.value} stage: {exc}"
            ) from None

    async def _in_container(
        self,
        script: str,
        stage: BuildStage,
        *,
        env: Mapping[str, str],
        output: Callable[[bytes], None],
        timeout: float | None,
        cancel: asyncio.Event,
    ) -> ScriptResult:
        assert self._client is not None and self._tmp is not None
        client, inside_env = (
            self._client,
            containers.inside_env(env, self._job_keys, self._host_dirs, self._inside),
        )
        if stage is BuildStage.AFTER_SCRIPT or self._container is None:
            await self._retire()
            self._container = await call(self._create, client, inside_env)
        container = self._container
        self._scripts += 1
        name = f"script-{self._scripts}.sh"
        (self._tmp / name).write_text(script)
        if self._copy:
            await self._push(container, name)
        exec_id = (
            await call(
                client.api.exec_create,
                container.id,
                ["sh", "-c", containers.SHELL, "sh", f"{self._inside[1]}/{name}"],
                environment=inside_env,
                workdir=self._inside[0],
                privileged=self._config.privileged,  # an exec is not, unless asked
            )
        )["Id"]
        stop = functools.partial(self._stop_container, container)
        result = await sections.stream(
            client, exec_id, output=output, timeout=timeout, cancel=cancel, stop=stop
        )
        if not result.ok and self._container is container:  # not removed by a stop, but gone?
            await call(sections.still_there, container)
        if self._copy and self._container is container:  # not removed by a stop
            await call(sync.pull, container, Path(self._host_dirs[0]), self._inside[0])
        return result

    async def _stop_container(self, container: Container) -> None:
        """A stop removes the whole container: every process of the script ends at once."""
        self._container = None
        await self._remove(container)

    def _forget(self) -> str:
        """Drop a build container that vanished; the next section makes a new one."""
        container, self._container, self._dirty = self._container, None, True
        return (container.name or container.id or "") if container is not None else ""

    async def _push(self, container: Container, script: str) -> None:
        """Copy the build directory to the container if it changed here, else only the script."""
        host, tmp = Path(self._host_dirs[0]), Path(self._host_dirs[1])
        if not self._dirty:
            await call(sync.push, container, [(tmp / script, f"{self._inside[1]}/{script}")])
            return
        pairs = list(zip((host, tmp), self._inside, strict=True))
        await call(sync.push, container, pairs)
        self._dirty = False

    def _create(self, client: docker.DockerClient, env: dict[str, str]) -> Container:
        options: dict[str, Any] = {
            **containers.resources(self._config),
            **self._mounts,
            "labels": labels(self._runner.name, self._job_id, "build"),
            "environment": env,
            "working_dir": self._inside[0],
        }
        if self._network is not None:
            options["network"] = self._network
        if self._entrypoint is not None:
            options["entrypoint"] = self._entrypoint
        name = object_name(self._runner.name, self._job_id, f"build-{secrets.token_hex(4)}")
        return containers.start_build(client, self._image, name, options)

    # --- cleanup ------------------------------------------------------------------------

    async def _retire(self) -> None:
        """Measure and remove the build container, if there is one."""
        container, self._container = self._container, None
        if container is None:
            return
        try:
            used = await call(containers.usage_of, container, self._address.is_local)
        except (*UNREACHABLE, docker.errors.APIError, OSError):
            used = None
        if used is not None:
            self._used.append(used)
        await self._remove(container)

    async def _remove(self, container: Container) -> None:
        try:
            await call(container.remove, force=True, v=True)
        except docker.errors.NotFound:
            pass
        except (*UNREACHABLE, docker.errors.APIError):
            log.warning("cannot remove container %s", container.name, exc_info=True)

    async def cleanup(self, set_stage: Callable[[ExecutorStage], None]) -> None:
        set_stage(ExecutorStage.DOCKER_CLEANUP)
        try:
            await self._retire()
            running, self._services = self._services, []
            await asyncio.gather(*(self._remove(r.container) for r in running))
            client, network, scratch = self._client, self._network, self._scratch
            self._network, self._scratch = None, []
            if client is not None:
                await call(containers.remove_network_and_volumes, client, network, scratch)
        except Exception:
            log.warning("job %d: cleaning up its containers failed", self._job_id, exc_info=True)
        for tmp in (self._tmp, self._private):
            if tmp is not None:
                await asyncio.to_thread(shutil.rmtree, tmp, True)
        self._tmp = self._private = None

    def usage(self) -> ResourceUsage | None:
        return rusage.combine(self._used)
