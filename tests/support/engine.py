"""A real container engine for the tests: podman's Docker-compatible API on a private socket.

`scripts/setup --test` installs podman and runc and configures them; the
images come from `scripts/container-images` (built locally from Debian's
busybox-static: no registry is reachable here).
"""

from __future__ import annotations

import re
import socket as socketlib
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest
import requests.exceptions

from tests.support.polling import wait_until

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "alloy-test/busybox"  # a shell and busybox's tools; no git, no bash
WEB = "alloy-test/web"  # the same, serving "hello from web" on port 80 (EXPOSE 80)
LABEL_RUNNER = "com.alloy-runner.runner"


@dataclass
class Engine:
    """A running `podman system service` and a client of it (on a socket, or on TCP)."""

    socket: Path
    process: subprocess.Popen[bytes]
    tcp_port: int = 0  # listening on tcp://127.0.0.1:PORT instead: a "remote" engine

    @property
    def host(self) -> str:
        return f"tcp://127.0.0.1:{self.tcp_port}" if self.tcp_port else f"unix://{self.socket}"

    def client(self) -> docker.DockerClient:
        """Return a client; the caller closes it."""
        return docker.DockerClient(base_url=self.host, version="1.41", timeout=60)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_engine(directory: Path, tcp: bool = False) -> Engine:
    """Build the test images if missing, start the engine on a socket in `directory`.

    With `tcp`, the engine listens on a loopback TCP port: the runner treats it
    as remote (it does not bind-mount the build directory there).
    """
    subprocess.run([str(ROOT / "scripts" / "container-images")], check=True, timeout=300)
    socket = directory / "podman.sock"
    port = free_port() if tcp else 0
    address = f"tcp://127.0.0.1:{port}" if tcp else f"unix://{socket}"
    process = subprocess.Popen(
        ["podman", "system", "service", "--time=0", address],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    engine = Engine(socket, process, port)
    try:

        def answers() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"podman system service exited with {process.returncode}")
            if not tcp and not socket.exists():
                return False
            client = engine.client()
            try:
                return bool(client.ping())
            except (docker.errors.DockerException, requests.exceptions.ConnectionError):
                return False
            finally:
                client.close()

        wait_until(answers, 30, 0.1, "the podman engine to answer")
    except BaseException:
        engine.stop()
        raise
    return engine


def free_port() -> int:
    """Return a loopback TCP port that was free a moment ago."""
    with socketlib.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def tcp_engine_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """The session's engine on loopback TCP, which the runner treats as a remote one."""
    engine = start_engine(tmp_path_factory.mktemp("tcp-engine"), tcp=True)
    try:
        yield engine
    finally:
        engine.stop()


def engine_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """The session's engine: conftests wrap it with `pytest.fixture(scope="session")`."""
    engine = start_engine(tmp_path_factory.mktemp("engine"))
    try:
        yield engine
    finally:
        engine.stop()


def unique_runner(prefix: str = "dk") -> str:
    """Return a runner name no other test uses: leftovers are looked for by runner name."""
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def leftovers(runner: str) -> dict[str, list[str]]:
    """Return the containers, networks and volumes of `runner`'s jobs, as podman lists them.

    Found by label, and by name (`alloy-RUNNER-job-...`), so that an object the
    engine made without the runner's labels is found too.
    """
    labelled = re.compile(rf"{re.escape(LABEL_RUNNER)}[:=]{re.escape(runner)}(?=[\s\],]|$)")
    prefix = f"alloy-{runner}-job-"
    found = {}
    for what, command in (
        ("containers", ["podman", "ps", "-a", "--format", "{{.Names}} {{.Labels}}"]),
        ("networks", ["podman", "network", "ls", "--format", "{{.Name}} {{.Labels}}"]),
        ("volumes", ["podman", "volume", "ls", "--format", "{{.Name}} {{.Labels}}"]),
    ):
        done = subprocess.run(command, capture_output=True, text=True, check=True, timeout=60)
        names = []
        for line in done.stdout.splitlines():
            name, _, marks = line.partition(" ")
            if name.startswith(prefix) or labelled.search(marks):
                names.append(name)
        found[what] = names
    return found


NOTHING: dict[str, list[str]] = {"containers": [], "networks": [], "volumes": []}


def docker_config(
    base: str,
    engine_host: str,
    *,
    image: str = IMAGE,
    pull_policy: str = '"if-not-present"',
    extra: str = "",
    runner_extra: str = "",
) -> str:
    """Append `executor = "docker"` and a [runners.docker] table to a rig's config."""
    return (
        base
        + 'executor = "docker"\n'
        + runner_extra
        + "[runners.docker]\n"
        + f'host = "{engine_host}"\n'
        + f"pull_policy = {pull_policy}\n"
        + (f'image = "{image}"\n' if image else "")
        + extra
    )
