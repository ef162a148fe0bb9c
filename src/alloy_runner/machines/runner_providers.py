"""The machine providers of one runner process: one per docker+machine runner, wired from config."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path

from alloy_runner.config.model import MACHINE_EXECUTORS, RunnerConfig
from alloy_runner.config.paths import default_machines_dir
from alloy_runner.executors.base import Executor
from alloy_runner.executors.machine import MachineExecutor
from alloy_runner.machines.driver import MachineDriver
from alloy_runner.machines.drivers.docker_machine import DockerMachineDriver
from alloy_runner.machines.drivers.local import LocalDriver
from alloy_runner.machines.metrics import MachineMetrics, MachineState
from alloy_runner.machines.names import machine_template, name_factory, name_filter
from alloy_runner.machines.pool import MachinePool, PoolLimits
from alloy_runner.machines.provider import MachineProvider
from alloy_runner.machines.schedule import IdleSchedule

LOCAL_DRIVER = "local"  # MachineDriver that makes machines as directories on this host
LOCAL_ROOT_OPTION = "local-root"  # MachineOptions entry `local-root=PATH` of the local driver


def make_driver(runner: RunnerConfig) -> MachineDriver:
    """Return the driver of a machine runner: `local`, else the docker-machine CLI."""
    machine = runner.machine
    assert machine is not None
    if machine.machine_driver != LOCAL_DRIVER:
        return DockerMachineDriver(machine.machine_driver, machine.machine_options)
    root = default_machines_dir()
    for option in machine.machine_options:
        key, _, value = option.lstrip("-").partition("=")
        if key == LOCAL_ROOT_OPTION and value:
            root = Path(value).expanduser()
    return LocalDriver(root, shell=runner.shell)


def make_provider(
    runner: RunnerConfig,
    metrics: MachineMetrics,
    driver: MachineDriver | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> MachineProvider:
    """Return the provider of a machine runner, its pool bounded by the runner's `limit`."""
    machine = runner.machine
    assert machine is not None
    template = machine_template(runner.name, machine.machine_name)
    schedule = IdleSchedule(machine)
    pool = MachinePool(
        PoolLimits(limit=runner.limit, max_builds=machine.max_builds),
        policy=lambda: schedule.at(now()),
        new_name=name_factory(template),
        metrics=metrics,
    )
    return MachineProvider(
        pool,
        driver if driver is not None else make_driver(runner),
        name_filter=name_filter(template),
        label=f"runner {runner.name}",
    )


class MachineProviders:
    """Every machine runner's provider, by runner name; started and stopped with the process."""

    def __init__(
        self,
        runners: Iterable[RunnerConfig],
        metrics_for: Callable[[str], MachineMetrics],
    ) -> None:
        self.runners = {r.name: r for r in runners if r.executor in MACHINE_EXECUTORS}
        self.providers = {
            name: make_provider(r, metrics_for(r.executor)) for name, r in self.runners.items()
        }

    def snapshot(self, executor: str) -> dict[MachineState, int]:
        """Return the machines per state of every provider of `executor`, summed."""
        total = dict.fromkeys(MachineState, 0)
        for name, provider in self.providers.items():
            if self.runners[name].executor == executor:
                for state, count in provider.pool.snapshot().items():
                    total[state] += count
        return total

    def executor_for(
        self, fallback: Callable[[RunnerConfig], Executor]
    ) -> Callable[[RunnerConfig], Executor]:
        """Return the scheduler's `executor_for`: a machine executor for machine runners.

        docker+machine runs builds in containers on the machine's engine;
        docker-ssh+machine runs bash on the machine through the driver's shell.
        """

        def executor(runner: RunnerConfig) -> Executor:
            provider = self.providers.get(runner.name)
            if provider is None:
                return fallback(runner)
            if runner.executor == "docker+machine":  # builds run in the machine's engine
                from alloy_runner.executors.docker.machine import DockerMachineExecutor

                return DockerMachineExecutor(provider, runner)
            return MachineExecutor(provider, runner.executor, kill_timeout=runner.kill_timeout)

        return executor

    async def start(self) -> None:
        """Adopt existing machines and start every provider's reconcile loop."""
        await asyncio.gather(*(p.start() for p in self.providers.values()))

    async def shutdown(self, timeout: float) -> None:
        """Stop every provider within `timeout` seconds; the machines stay for the next start."""
        await asyncio.gather(*(p.shutdown(timeout) for p in self.providers.values()))
