"""The MachineDriver protocol: how machines are made, found, removed, and reached."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class MachineShell:
    """A command that reads a bash script on stdin and runs it on a machine."""

    argv: tuple[str, ...]
    cwd: Path | None = None
    remote: bool = True  # the machine does not share this host's environment


@dataclass(frozen=True)
class MachineEngine:
    """The Docker engine of a machine (`docker-machine config`); empty `host`: this host's."""

    host: str = ""
    tls_verify: bool = False
    tls_cert_path: str = ""  # the directory of ca.pem, cert.pem and key.pem


class MachineDriver(Protocol):
    """Create, remove, list and reach machines; every call has a bound in time."""

    name: str

    async def create(self, name: str) -> None:
        """Create machine `name`; raise MachineError if it could not be created."""

    async def stop(self, name: str) -> None:
        """Stop machine `name` before its removal, as GitLab Runner does; raise MachineError."""

    async def remove(self, name: str) -> None:
        """Remove machine `name` (a machine that is already gone is removed); raise MachineError."""

    async def list(self) -> list[str]:
        """Return the names of every machine the driver has, this runner's or not."""

    async def exists(self, name: str) -> bool:
        """Tell whether machine `name` exists (in whatever state)."""

    async def home(self, name: str) -> Path:
        """Return the directory on the machine under which builds run."""

    def shell(self, name: str) -> MachineShell:
        """Return the command that runs a script on machine `name`."""

    async def engine(self, name: str) -> MachineEngine:
        """Return how to reach the Docker engine of machine `name`; raise MachineError."""
