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

    def machine_removed(self) -> None:
        """A machine that existed was removed."""

    def machine_used(self) -> None:
        """A machine was taken for a build."""

    def creation_failed(self) -> None:
        """A machine could not be created."""


class NoMachineMetrics:
    """MachineMetrics that records nothing."""

    def machine_created(self, seconds: float) -> None:
        pass

    def machine_removed(self) -> None:
        pass

    def machine_used(self) -> None:
        pass

    def creation_failed(self) -> None:
        pass
