"""The machine families: pool states read at collection, machine events recorded as they happen."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import TYPE_CHECKING

from alloy_runner.config.model import MACHINE_EXECUTORS
from alloy_runner.machines.metrics import MachineEvent, MachineState
from alloy_runner.telemetry.catalog import instruments

if TYPE_CHECKING:
    from alloy_runner.telemetry.catalog.instruments import Family
    from alloy_runner.telemetry.metrics.setup import Reading, Telemetry

# Per executor: its counter, its provider gauge, its creation, failed-creation, removal and
# stopping histograms.
FAMILIES: dict[str, tuple[Family, Family, Family, Family, Family, Family]] = {
    "docker+machine": (
        instruments.DOCKER_MACHINES,
        instruments.DOCKER_MACHINES_PROVIDER,
        instruments.DOCKER_MACHINES_CREATION,
        instruments.DOCKER_MACHINES_FAILED_CREATION,
        instruments.DOCKER_MACHINES_REMOVAL,
        instruments.DOCKER_MACHINES_STOPPING,
    ),
    "docker-ssh+machine": (
        instruments.SSH_DOCKER_MACHINES,
        instruments.SSH_DOCKER_MACHINES_PROVIDER,
        instruments.SSH_DOCKER_MACHINES_CREATION,
        instruments.SSH_DOCKER_MACHINES_FAILED_CREATION,
        instruments.SSH_DOCKER_MACHINES_REMOVAL,
        instruments.SSH_DOCKER_MACHINES_STOPPING,
    ),
}
assert set(FAMILIES) == set(MACHINE_EXECUTORS)

Snapshot = Callable[[str], Mapping[MachineState, int]]


class MachineTelemetry:
    """The telemetry side of `MachineMetrics`, for the providers of one machine executor."""

    def __init__(self, telemetry: Telemetry, executor: str) -> None:
        counter, _, creation, failed_creation, removal, stopping = FAMILIES[executor]
        self._events = telemetry.counter(counter)
        self._creation = telemetry.histogram(creation)
        self._failed_creation = telemetry.histogram(failed_creation)
        self._removal = telemetry.histogram(removal)
        self._stopping = telemetry.histogram(stopping)
        # Every series of the closed label set exists from the start, as in the seed's sample.
        for event in MachineEvent:
            self._events.add(0, {"type": event.value})

    # --- MachineMetrics ----------------------------------------------------------------

    def machine_created(self, seconds: float) -> None:
        self._events.add(1, {"type": MachineEvent.CREATED.value})
        self._creation.record(seconds)

    def machine_removed(self, seconds: float | None = None) -> None:
        self._events.add(1, {"type": MachineEvent.REMOVED.value})
        if seconds is not None:
            self._removal.record(seconds)

    def machine_stopped(self, seconds: float) -> None:
        self._stopping.record(seconds)

    def machine_used(self) -> None:
        self._events.add(1, {"type": MachineEvent.USED.value})

    def creation_failed(self, seconds: float | None = None) -> None:
        self._events.add(1, {"type": MachineEvent.CREATION_FAILED.value})
        if seconds is not None:
            self._failed_creation.record(seconds)


def install_machine_telemetry(telemetry: Telemetry) -> dict[str, MachineTelemetry]:
    """Register both machine executors' event families; return their MachineMetrics by executor.

    Both are always exposed, with every event at 0 when no runner uses them.
    """
    return {e: MachineTelemetry(telemetry, e) for e in MACHINE_EXECUTORS}


def observe_machine_states(telemetry: Telemetry, snapshot: Snapshot) -> None:
    """Register both executors' `*_provider{state}` gauges, read from `snapshot` at collection.

    Registered once the providers exist (they record into `install_machine_telemetry`'s
    families); every state is 0 when no runner uses the executor.
    """
    for executor in MACHINE_EXECUTORS:
        provider = FAMILIES[executor][1]
        telemetry.observe(provider, partial(_states, snapshot, executor))


def _states(snapshot: Snapshot, executor: str) -> Reading:
    counts = snapshot(executor)
    return [(float(counts.get(state, 0)), {"state": state.value}) for state in MachineState]
