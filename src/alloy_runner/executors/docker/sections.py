"""EXECUTOR_JOB_SECTION_ATTEMPTS, as GitLab Runner's docker executor reads it
(executors/docker/docker_command.go's runContainer): a section (a stage's script) whose
container is gone, removed by someone else while the job ran, runs again from its start in a
new container, up to that many times in all; any other error ends the section at once. And
how a section's output streams from its `exec`.

The runs of a section share the time it was given, as GitLab's share the job's context: the
deadline is fixed when the section starts, each run gets only what is left of it, and none
starts once nothing is left (the section then times out) or the job was canceled.

The stages that run in a container here are build_script and after_script (the others run
on the runner's host: docs/executors.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import logging
import time
from collections.abc import Awaitable, Callable

import docker
import docker.errors
import requests
import urllib3.exceptions
from docker.models.containers import Container

from alloy_runner.build.states import BuildStage
from alloy_runner.executors.base import Outcome, ScriptResult
from alloy_runner.executors.docker.engine import call

log = logging.getLogger(__name__)

# What a section's output stream raises when it breaks off mid-chunk (its container removed
# while it wrote): the exec's own end, read next, decides what happened.
BROKEN_STREAM = (
    requests.exceptions.RequestException,
    urllib3.exceptions.HTTPError,
    http.client.HTTPException,
    OSError,
)

DRAIN_TIMEOUT = 5.0  # seconds the output of a stopped script may still take to arrive


def still_there(container: Container) -> None:
    """Raise NotFound when a build container whose section failed is gone or going (removed
    by someone else): GitLab's "not found or removed", which a new container may overcome."""
    container.reload()  # NotFound when it is gone already
    if container.status != "running":
        raise docker.errors.NotFound(f"container {container.name} is {container.status}")


def say(output: Callable[[bytes], None], line: str) -> None:
    output(f"{line}\n".encode())


Section = Callable[[float | None], Awaitable[ScriptResult]]


async def run(
    once: Section,
    attempts: int,
    stage: BuildStage,
    say: Callable[[str], None],
    forget: Callable[[], str],
    *,
    timeout: float | None,
    cancel: asyncio.Event,
    clock: Callable[[], float] = time.monotonic,
) -> ScriptResult:
    """Run a section (`once`, given the seconds it may take) until it ends, again when its
    container vanished, all within `timeout`; `forget` drops the vanished container (a new
    one is made) and returns its name."""
    deadline = None if timeout is None else clock() + timeout
    gone: docker.errors.NotFound | None = None
    for attempt in range(1, attempts + 1):
        left = None if deadline is None else deadline - clock()
        if cancel.is_set():
            return ScriptResult(Outcome.CANCELED)
        if left is not None and left <= 0:
            return ScriptResult(Outcome.TIMED_OUT)
        if attempt > 1:
            say(f"Retrying {stage.value}")
        try:
            return await once(left)
        except docker.errors.ImageNotFound:
            raise  # no container to make again: GitLab does not retry this either
        except docker.errors.NotFound as exc:
            gone = exc
            say(f'ERROR: Container "{forget()}" not found or removed. Will retry...')
    if attempts > 1:
        say("ERROR: Execution attempts exceeded")
    assert gone is not None
    raise gone


async def stream(
    client: docker.DockerClient,
    exec_id: str,
    *,
    output: Callable[[bytes], None],
    timeout: float | None,
    cancel: asyncio.Event,
    stop: Callable[[], Awaitable[None]],
) -> ScriptResult:
    """Stream a section's exec output until it ends; a cancel or the timeout calls `stop`
    (which removes the container)."""
    loop = asyncio.get_running_loop()

    def pump() -> None:
        for chunk in client.api.exec_start(exec_id, stream=True):
            loop.call_soon_threadsafe(output, chunk)

    pumping = asyncio.ensure_future(call(pump))
    canceled = asyncio.ensure_future(cancel.wait())
    try:
        done, _ = await asyncio.wait(
            {pumping, canceled}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        canceled.cancel()
    if pumping not in done:
        outcome = Outcome.CANCELED if canceled in done else Outcome.TIMED_OUT
        await stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(pumping, DRAIN_TIMEOUT)
        return ScriptResult(outcome)
    try:
        pumping.result()
    except docker.errors.DockerException:
        raise
    except BROKEN_STREAM as exc:
        log.debug("the output of exec %s broke off: %s", exec_id, exc)
    try:
        code = (await call(client.api.exec_inspect, exec_id)).get("ExitCode")
    except docker.errors.APIError as exc:
        # Podman answers 500 "no such container", not 404, once the exec's container is gone.
        if isinstance(exc, docker.errors.NotFound) or "no such container" not in str(exc):
            raise
        raise docker.errors.NotFound(str(exc)) from exc
    return ScriptResult(Outcome.EXITED, int(code) if code is not None else None)
