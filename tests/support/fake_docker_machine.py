"""A scripted fake `docker-machine` CLI: machines are directories, `ssh` runs commands locally.

Run as `python fake_docker_machine.py ARGS...` (the `docker-machine` wrapper that
`install_fake_docker_machine` writes does that). Its state lives in
`$FAKE_DOCKER_MACHINE_STATE`:

    machines/<name>/config.json   a machine (its "Driver" says how it was created)
    machines/<name>/home/         the machine's home directory; `ssh NAME ...` runs there
    calls.log                     one line per call: the arguments, tab-separated
    create-seconds                how long `create` takes (default 0)
    fail-create                   while present, `create` fails (leaving a broken machine)
    fail-remove                   while present, `rm` fails
    engine                        the machine's engine for `config NAME`: an address, or the
                                  whole output (default: unix:///nonexistent/docker.sock)

Control files can be made and removed while a runner uses the fake.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Mapping
from pathlib import Path

STATE_ENV = "FAKE_DOCKER_MACHINE_STATE"


def install_fake_docker_machine(bin_dir: Path, state: Path) -> dict[str, str]:
    """Write a `docker-machine` executable into `bin_dir`; return the env that puts it on PATH."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    (state / "machines").mkdir(parents=True, exist_ok=True)
    wrapper = bin_dir / "docker-machine"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{Path(__file__).resolve()}" "$@"\n')
    wrapper.chmod(0o755)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", STATE_ENV: str(state)}


def machine_names(state: Path) -> list[str]:
    """Return the machines the fake holds, sorted."""
    root = state / "machines"
    return sorted(p.name for p in root.iterdir() if (p / "config.json").is_file())


def calls(state: Path) -> list[list[str]]:
    """Return the calls made so far, each as its argument list."""
    log = state / "calls.log"
    if not log.exists():
        return []
    return [line.split("\t") for line in log.read_text().splitlines()]


def _fail(message: str, code: int = 1) -> int:
    sys.stderr.write(message + "\n")
    return code


def _create(state: Path, args: list[str]) -> int:
    if len(args) < 3 or args[0] != "--driver":
        return _fail("Error: usage: create --driver DRIVER [OPTIONS] NAME")
    driver, options, name = args[1], args[2:-1], args[-1]
    machine = state / "machines" / name
    if machine.exists():
        return _fail(f'Host already exists: "{name}"')
    delay = state / "create-seconds"
    if delay.exists():
        time.sleep(float(delay.read_text() or 0))
    (machine / "home").mkdir(parents=True)
    broken = (state / "fail-create").exists()
    config = {"Name": name, "DriverName": driver, "Options": options, "Broken": broken}
    (machine / "config.json").write_text(json.dumps(config))
    if broken:
        return _fail("Error creating machine: Error in driver during machine creation: (fake)")
    print(f"Docker is up and running on {name}!")
    return 0


def _remove(state: Path, args: list[str]) -> int:
    names = [a for a in args if not a.startswith("-")]
    if (state / "fail-remove").exists():
        return _fail(f"Error removing host {names}: (fake) provider refused")
    for name in names:
        machine = state / "machines" / name
        if not machine.exists():
            return _fail(f'Error removing host "{name}": Host does not exist: "{name}"')
        shutil.rmtree(machine)
        print(f"Successfully removed {name}")
    return 0


def _ssh(state: Path, args: list[str], env: Mapping[str, str]) -> int:
    if not args:
        return _fail("Error: No machine name(s) specified")
    name, command = args[0], args[1:]
    home = state / "machines" / name / "home"
    if not home.is_dir():
        return _fail(f'Host does not exist: "{name}"')
    os.chdir(home)
    # Like ssh, the remote shell parses the joined command line; no command: a login shell.
    argv = ["bash", "-c", " ".join(command)] if command else ["bash"]
    os.execvpe("bash", argv, dict(env))


def main(argv: list[str]) -> int:
    state = Path(os.environ[STATE_ENV])
    with (state / "calls.log").open("a") as log:
        log.write("\t".join(argv) + "\n")
    if not argv:
        return _fail("Usage: docker-machine COMMAND")
    command, args = argv[0], argv[1:]
    machines = state / "machines"
    if command == "create":
        return _create(state, args)
    if command == "rm":
        return _remove(state, args)
    if command == "stop":
        if not args or not (machines / args[0]).is_dir():
            return _fail(f'Host does not exist: "{args[0] if args else ""}"')
        print(f'Stopping "{args[0]}"...')
        return 0
    if command == "ls":
        for name in machine_names(state):
            print(name)
        return 0
    if command == "inspect":
        config = machines / (args[0] if args else "") / "config.json"
        if not args or not config.is_file():
            return _fail(f'Host does not exist: "{args[0] if args else ""}"')
        print(config.read_text())
        return 0
    if command == "config":
        if not args or not (machines / args[0] / "config.json").is_file():
            return _fail(f'Host does not exist: "{args[0] if args else ""}"')
        engine = state / "engine"
        text = engine.read_text().strip() if engine.exists() else "unix:///nonexistent/docker.sock"
        print(text if text.startswith("-") else f"-H={text}")  # whole output, or the host
        return 0
    if command == "ssh":
        return _ssh(state, args, os.environ)
    return _fail(f"docker-machine: '{command}' is not a docker-machine command.")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
