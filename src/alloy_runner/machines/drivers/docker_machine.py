"""The `docker-machine` driver: the real CLI, one bounded subprocess per call."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from dataclasses import dataclass
from pathlib import Path

from alloy_runner.exceptions import MachineError
from alloy_runner.machines.driver import MachineEngine, MachineShell

EXECUTABLE = "docker-machine"


@dataclass(frozen=True)
class Timeouts:
    """Seconds each docker-machine call may take before it is killed."""

    create: float = 600.0
    remove: float = 300.0
    query: float = 60.0  # ls, inspect, ssh NAME pwd


class DockerMachineDriver:
    """Drive `docker-machine create --driver X [MachineOptions] NAME`, `rm -y`, `ls -q`, `inspect`.

    Builds reach a machine through `docker-machine ssh NAME`, with the script on stdin.
    """

    name = "docker-machine"

    def __init__(
        self,
        machine_driver: str,
        options: tuple[str, ...] = (),
        *,
        executable: str = EXECUTABLE,
        timeouts: Timeouts | None = None,
    ) -> None:
        self.machine_driver = machine_driver
        # GitLab Runner's MachineOptions are written without the dashes of the flag.
        self.options = tuple(o if o.startswith("-") else f"--{o}" for o in options)
        self.executable = executable
        self.timeouts = timeouts if timeouts is not None else Timeouts()
        self._homes: dict[str, Path] = {}

    async def create(self, name: str) -> None:
        await self._run(
            "create",
            "--driver",
            self.machine_driver,
            *self.options,
            name,
            timeout=self.timeouts.create,
        )

    async def stop(self, name: str) -> None:
        await self._run("stop", name, timeout=self.timeouts.remove)

    async def remove(self, name: str) -> None:
        self._homes.pop(name, None)
        try:
            await self._run("rm", "-y", name, timeout=self.timeouts.remove)
        except MachineError:
            if await self.exists(name):
                raise
            # Already gone: what removal wanted.

    async def list(self) -> list[str]:
        out = await self._run("ls", "-q", timeout=self.timeouts.query)
        return [line.strip() for line in out.splitlines() if line.strip()]

    async def exists(self, name: str) -> bool:
        try:
            await self._run("inspect", name, timeout=self.timeouts.query)
        except MachineError:
            return False
        return True

    async def home(self, name: str) -> Path:
        if name not in self._homes:
            out = await self._run("ssh", name, "pwd", timeout=self.timeouts.query)
            lines = out.strip().splitlines()
            if not lines or not lines[-1].startswith("/"):
                raise MachineError(f"docker-machine ssh {name} pwd: no directory in {out!r}")
            self._homes[name] = Path(lines[-1])
        return self._homes[name]

    async def engine(self, name: str) -> MachineEngine:
        """Read `docker-machine config NAME`: `-H=tcp://...`, `--tlsverify`, `--tlscert=...`."""
        out = await self._run("config", name, timeout=self.timeouts.query)
        host, verify, cert = "", False, ""
        for word in out.split():
            flag, _, value = word.partition("=")
            value = value.strip('"')
            if flag in ("-H", "--host"):
                host = value
            elif flag == "--tlsverify":
                verify = True
            elif flag == "--tlscert":
                cert = str(Path(value).parent)
        if not host:
            raise MachineError(f"docker-machine config {name}: no engine address in {out!r}")
        return MachineEngine(host, verify, cert)

    def shell(self, name: str) -> MachineShell:
        return MachineShell((self.executable, "ssh", name, "bash --noprofile --norc -s"))

    async def _run(self, *args: str, timeout: float) -> str:
        """Run `docker-machine ARGS`; return stdout, or raise MachineError naming the call."""
        what = " ".join((self.executable, *args))
        try:
            proc = await asyncio.create_subprocess_exec(
                self.executable,
                *args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            raise MachineError(f"{what}: cannot run {self.executable}: {exc}") from None
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            raise MachineError(f"{what}: timed out after {timeout:g}s") from None
        finally:
            if proc.returncode is None:  # timed out, or the caller was canceled
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await asyncio.shield(proc.wait())
        if proc.returncode != 0:
            lines = err.decode(errors="replace").strip().splitlines()
            detail = lines[-1] if lines else "no error output"
            raise MachineError(f"{what}: exit status {proc.returncode}: {detail}")
        return out.decode(errors="replace")
