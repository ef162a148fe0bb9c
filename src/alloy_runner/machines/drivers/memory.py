"""A driver that keeps machines as names in memory: for tests and benchmarks."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alloy_runner.exceptions import MachineError
from alloy_runner.machines.driver import MachineEngine, MachineShell


class MemoryDriver:
    """Machines are names in a set; `fail_create` and `fail_remove` make the calls fail."""

    name = "memory"

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.machines: set[str] = set()
        self.fail_create = False
        self.fail_remove = False
        self.calls: list[tuple[str, str]] = []

    async def create(self, name: str) -> None:
        self.calls.append(("create", name))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail_create:
            raise MachineError(f"memory driver: creating {name} failed (as asked)")
        self.machines.add(name)

    async def stop(self, name: str) -> None:
        self.calls.append(("stop", name))

    async def remove(self, name: str) -> None:
        self.calls.append(("remove", name))
        if self.fail_remove:
            raise MachineError(f"memory driver: removing {name} failed (as asked)")
        self.machines.discard(name)

    async def list(self) -> list[str]:
        return sorted(self.machines)

    async def exists(self, name: str) -> bool:
        return name in self.machines

    async def home(self, name: str) -> Path:
        return Path("/nonexistent/memory-machines") / name

    async def engine(self, name: str) -> MachineEngine:
        return MachineEngine()

    def shell(self, name: str) -> MachineShell:
        return MachineShell(("bash", "--noprofile", "--norc", "-s"), remote=False)
