"""MachineTelemetry and ApiTelemetry on a fresh registry, read with `get_sample_value`."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from alloy_runner.coordinator.api_metrics import Endpoint, TransportFailure
from alloy_runner.machines.metrics import MachineEvent, MachineState
from alloy_runner.telemetry.metrics.api import ApiTelemetry
from alloy_runner.telemetry.metrics.machines import (
    install_machine_telemetry,
    observe_machine_states,
)
from alloy_runner.telemetry.metrics.setup import Telemetry

PREFIX = {"docker+machine": "ci_docker_machines", "docker-ssh+machine": "ci_ssh_docker_machines"}


def value(telemetry: Telemetry, name: str, **labels: str) -> float | None:
    return telemetry.registry.get_sample_value(name, labels)


def test_both_machine_executors_expose_every_event_and_state_at_zero(
    telemetry: Telemetry,
) -> None:
    """With no machine runner, both executors' event counters and provider states read 0."""
    install_machine_telemetry(telemetry)
    observe_machine_states(telemetry, lambda executor: {})
    for prefix in PREFIX.values():
        for event in MachineEvent:
            assert value(telemetry, f"{prefix}_total", type=event.value) == 0
        for state in MachineState:
            assert value(telemetry, f"{prefix}_provider", state=state.value) == 0


@pytest.mark.parametrize("executor", sorted(PREFIX))
def test_machine_events_are_counted_for_their_executor_only(
    telemetry: Telemetry, executor: str
) -> None:
    """Events recorded through one executor's MachineMetrics count under its families only."""
    metrics = install_machine_telemetry(telemetry)
    recorder = metrics[executor]
    recorder.machine_created(12.0)
    recorder.machine_used()
    recorder.machine_used()
    recorder.machine_removed()
    recorder.creation_failed()
    prefix = PREFIX[executor]
    other = next(p for e, p in PREFIX.items() if e != executor)
    assert value(telemetry, f"{prefix}_total", type="created") == 1
    assert value(telemetry, f"{prefix}_total", type="used") == 2
    assert value(telemetry, f"{prefix}_total", type="removed") == 1
    assert value(telemetry, f"{prefix}_total", type="creation_failed") == 1
    assert value(telemetry, f"{prefix}_creation_duration_seconds_count") == 1
    assert value(telemetry, f"{prefix}_creation_duration_seconds_sum") == 12.0
    assert value(telemetry, f"{other}_total", type="created") == 0


def test_provider_states_are_read_from_the_pools_at_collection(telemetry: Telemetry) -> None:
    """`*_provider{state}` shows each executor's pool snapshot as it is at the scrape."""
    pools: dict[str, Mapping[MachineState, int]] = {
        "docker+machine": {MachineState.IDLE: 2, MachineState.USED: 1}
    }
    install_machine_telemetry(telemetry)
    observe_machine_states(telemetry, lambda e: pools.get(e, {}))
    assert value(telemetry, "ci_docker_machines_provider", state="idle") == 2
    assert value(telemetry, "ci_docker_machines_provider", state="used") == 1
    assert value(telemetry, "ci_docker_machines_provider", state="creating") == 0
    pools["docker+machine"] = {MachineState.CREATING: 4}
    assert value(telemetry, "ci_docker_machines_provider", state="idle") == 0
    assert value(telemetry, "ci_docker_machines_provider", state="creating") == 4
    assert value(telemetry, "ci_ssh_docker_machines_provider", state="idle") == 0


def test_api_calls_are_counted_by_status_and_timed_by_endpoint(telemetry: Telemetry) -> None:
    """Each API call counts under its runner, endpoint and status, and is timed per endpoint."""
    api = ApiTelemetry(telemetry)
    api.request_done("gl", Endpoint.REQUEST_JOB, 204, 0.02)
    api.request_done("gl", Endpoint.REQUEST_JOB, 201, 0.03)
    api.request_done("gl", Endpoint.REQUEST_JOB, TransportFailure.TIMEOUT, 10.0)
    api.request_done("gl", Endpoint.UPDATE_JOB, 999, 0.01)
    job = {"runner": "gl", "endpoint": "request_job"}
    assert value(telemetry, "ci_runner_api_request_statuses_total", **job, status="204") == 1
    assert value(telemetry, "ci_runner_api_request_statuses_total", **job, status="timeout") == 1
    update = {"runner": "gl", "endpoint": "update_job", "status": "invalid"}
    assert value(telemetry, "ci_runner_api_request_statuses_total", **update) == 1
    assert value(telemetry, "ci_runner_api_request_duration_seconds_count", **job) == 3
    assert value(telemetry, "ci_runner_api_request_duration_seconds_bucket", **job, le="0.05") == 2
