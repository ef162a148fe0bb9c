"""The `local` driver: a machine is a private directory on this host, and builds run in it."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from pathlib import Path

from alloy_runner.exceptions import MachineError
from alloy_runner.machines.driver import MachineEngine, MachineShell

METADATA = "machine.json"
_TRASH = ".removing-"  # a machine being removed is renamed first, so it vanishes at once


class LocalDriver:
    """Create a machine as `root/NAME/` with a metadata file; remove it with its contents."""

    name = "local"

    def __init__(self, root: Path, shell: str = "bash") -> None:
        self.root = root
        self._shell = shell

    async def create(self, name: str) -> None:
        await asyncio.to_thread(self._create, name)

    def _create(self, name: str) -> None:
        path = self.root / name
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            path.mkdir()
            partial = path / f".{METADATA}.tmp"
            partial.write_text(
                json.dumps({"name": name, "driver": self.name, "created_at": time.time()})
            )
            partial.replace(path / METADATA)
        except OSError as exc:
            raise MachineError(f"local machine {name}: cannot create {path}: {exc}") from None

    async def stop(self, name: str) -> None:
        """A machine that is a directory runs nothing of its own: stopping it is done at once."""

    async def remove(self, name: str) -> None:
        await asyncio.to_thread(self._remove, name)

    def _remove(self, name: str) -> None:
        path, trash = self.root / name, self.root / f"{_TRASH}{name}"
        try:
            if path.exists():
                os.replace(path, trash)
            if trash.exists():
                shutil.rmtree(trash)
        except OSError as exc:
            raise MachineError(f"local machine {name}: cannot remove {path}: {exc}") from None

    async def list(self) -> list[str]:
        return await asyncio.to_thread(_names, self.root)

    async def exists(self, name: str) -> bool:
        return await asyncio.to_thread((self.root / name).exists)

    async def home(self, name: str) -> Path:
        return self.root / name

    async def engine(self, name: str) -> MachineEngine:
        return MachineEngine()  # a local machine uses the runner's own engine

    def shell(self, name: str) -> MachineShell:
        flags = ("--noprofile", "--norc") if Path(self._shell).name == "bash" else ()
        return MachineShell((self._shell, *flags, "-s"), cwd=self.root / name, remote=False)


def _names(root: Path) -> list[str]:
    try:
        entries = list(root.iterdir())
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise MachineError(f"local machines: cannot list {root}: {exc}") from None
    return sorted(p.name for p in entries if (p / METADATA).is_file())
