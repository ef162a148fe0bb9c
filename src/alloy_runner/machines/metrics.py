"""What the machine pool reports as it works; telemetry/metrics/machines.py implements it."""

from __future__ import annotations

from enum import Enum
from typing import Protocol


class MachineState(Enum):
    """Where a machine is in its life (`ci_docker_machines_provider{state}`)."""

    ACQUIRED = "acquired"
    CREATING = "creating"
    IDLE = "idle"
    REMOVING = "removing"
    USED = "used"


class MachineEvent(Enum):
    """The closed values of `ci_docker_machines_total{type}`."""

    CREATED = "created"
    REMOVED = "removed"
    USED = "used"
    CREATION_FAILED = "creation_failed"


class MachineMetrics(Protocol):
    """Events of a machine provider (`ci_docker_machines_total{type}` and its histogram)."""

    def machine_created(self, seconds: float) -> None:
        """A machine was created; its creation took `seconds`."""

    def machine_removed(self, seconds: float | None = None) -> None:
        """A machine that existed was removed; the removal took `seconds` (None: unknown)."""

    def machine_used(self) -> None:
        """A machine was taken for a build."""

    def machine_stopped(self, seconds: float) -> None:
        """A machine was stopped before its removal; stopping it took `seconds`."""

    def creation_failed(self, seconds: float | None = None) -> None:
        """A machine could not be created, after trying for `seconds` (None: unknown)."""


class NoMachineMetrics:
    """MachineMetrics that records nothing."""

    def machine_created(self, seconds: float) -> None:
        pass

    def machine_removed(self, seconds: float | None = None) -> None:
        pass

    def machine_used(self) -> None:
        pass

    def machine_stopped(self, seconds: float) -> None:
        pass

    def creation_failed(self, seconds: float | None = None) -> None:
        pass
