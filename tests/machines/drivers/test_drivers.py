"""The drivers against real things: directories on this host, and the fake docker-machine CLI."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from alloy_runner.exceptions import MachineError
from alloy_runner.executors.process import run_process_group
from alloy_runner.machines.driver import MachineEngine
from alloy_runner.machines.drivers.docker_machine import DockerMachineDriver, Timeouts
from alloy_runner.machines.drivers.local import METADATA, LocalDriver
from tests.support.fake_docker_machine import calls, install_fake_docker_machine, machine_names


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Put the fake docker-machine on PATH; return its state directory."""
    state = tmp_path / "dm-state"
    for key, value in install_fake_docker_machine(tmp_path / "bin", state).items():
        monkeypatch.setenv(key, value)
    return state


async def _shell(argv: tuple[str, ...], cwd: Path | None, script: str) -> tuple[int | None, str]:
    out: list[bytes] = []
    result = await run_process_group(
        argv,
        cwd=cwd,
        env=os.environ,
        output=out.append,
        timeout=10,
        cancel=asyncio.Event(),
        kill_timeout=1,
        stdin=script.encode(),
    )
    return result.exit_code, b"".join(out).decode()


def test_local_machine_is_a_directory_made_and_removed(tmp_path: Path) -> None:
    """The local driver makes `root/NAME` with metadata, lists it, runs bash there, removes it."""
    driver = LocalDriver(tmp_path / "machines")

    async def scenario() -> None:
        await driver.create("runner-a-auto-1-00000000")
        assert (tmp_path / "machines" / "runner-a-auto-1-00000000" / METADATA).is_file()
        assert await driver.list() == ["runner-a-auto-1-00000000"]
        shell = driver.shell("runner-a-auto-1-00000000")
        code, out = await _shell(shell.argv, shell.cwd, "pwd\n")
        assert code == 0 and out.strip() == str(tmp_path / "machines" / "runner-a-auto-1-00000000")
        with pytest.raises(MachineError, match="cannot create"):
            await driver.create("runner-a-auto-1-00000000")
        await driver.remove("runner-a-auto-1-00000000")
        await driver.remove("runner-a-auto-1-00000000")  # gone already: still removed
        assert await driver.list() == []
        assert list((tmp_path / "machines").iterdir()) == []

    asyncio.run(scenario())


def test_docker_machine_driver_drives_the_cli(fake: Path) -> None:
    """create --driver X --OPTION NAME, ls -q, inspect, ssh and rm -y are what the driver runs."""
    driver = DockerMachineDriver("virtualbox", ("virtualbox-memory=512",))

    async def scenario() -> None:
        await driver.create("m-1")
        assert machine_names(fake) == ["m-1"]
        assert await driver.list() == ["m-1"]
        assert await driver.exists("m-1") and not await driver.exists("m-2")
        home = await driver.home("m-1")
        assert home == fake / "machines" / "m-1" / "home"
        shell = driver.shell("m-1")
        code, out = await _shell(shell.argv, shell.cwd, "echo on $(pwd)\nexit 3\n")
        assert (code, out.strip()) == (3, f"on {home}")
        await driver.stop("m-1")
        await driver.remove("m-1")
        assert machine_names(fake) == []
        with pytest.raises(MachineError, match="stop"):
            await driver.stop("m-1")  # it is gone

    asyncio.run(scenario())
    made = calls(fake)
    assert made.index(["stop", "m-1"]) < made.index(["rm", "-y", "m-1"])
    assert ["create", "--driver", "virtualbox", "--virtualbox-memory=512", "m-1"] in made
    assert ["rm", "-y", "m-1"] in made
    assert ["ls", "-q"] in made


def test_docker_machine_config_gives_the_machines_engine(fake: Path) -> None:
    """`docker-machine config NAME`'s -H, --tlsverify and --tlscert become the engine address."""
    driver = DockerMachineDriver("virtualbox")
    (fake / "engine").write_text(
        '--tlsverify\n--tlscacert="/m/certs/ca.pem"\n--tlscert="/m/certs/cert.pem"\n'
        '--tlskey="/m/certs/key.pem"\n-H=tcp://192.168.99.100:2376\n'
    )

    async def scenario() -> None:
        await driver.create("m-1")
        assert await driver.engine("m-1") == MachineEngine(
            "tcp://192.168.99.100:2376", True, "/m/certs"
        )
        (fake / "engine").write_text("unix:///run/other.sock")
        assert await driver.engine("m-1") == MachineEngine("unix:///run/other.sock")
        with pytest.raises(MachineError, match="config m-2"):
            await driver.engine("m-2")

    asyncio.run(scenario())


def test_docker_machine_errors_name_the_call(fake: Path) -> None:
    """A failing or slow call raises MachineError with the command and the CLI's last line."""
    driver = DockerMachineDriver("virtualbox", timeouts=Timeouts(create=0.5))

    async def scenario() -> None:
        (fake / "fail-create").touch()
        with pytest.raises(MachineError, match=r"create .* exit status 1: Error creating machine"):
            await driver.create("m-1")
        assert await driver.exists("m-1"), "the fake leaves a broken machine, as real ones do"
        (fake / "fail-create").unlink()
        (fake / "fail-remove").touch()
        with pytest.raises(MachineError, match="rm -y m-1: exit status 1"):
            await driver.remove("m-1")
        (fake / "fail-remove").unlink()
        await driver.remove("m-1")
        (fake / "create-seconds").write_text("5")
        with pytest.raises(MachineError, match=r"timed out after 0\.5s"):
            await driver.create("m-2")

    asyncio.run(scenario())


def test_missing_docker_machine_is_a_clear_error(tmp_path: Path) -> None:
    """Without the executable, a call fails with a MachineError that says it cannot run it."""
    driver = DockerMachineDriver("virtualbox", executable=str(tmp_path / "no-such-docker-machine"))
    with pytest.raises(MachineError, match="cannot run"):
        asyncio.run(driver.create("m-1"))
