"""`[runners.machine]` in config.toml: GitLab Runner's keys, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from alloy_runner.config.load import parse_config
from alloy_runner.config.model import AutoscalingConfig, MachineConfig
from alloy_runner.exceptions import ConfigError
from tests.support.cli import Invoke

RUNNER = '[[runners]]\nname = "m"\nexecutor = "docker+machine"\nlimit = 4\n'
MACHINE = '[runners.machine]\nMachineDriver = "virtualbox"\nMachineName = "auto-%s"\n'


def test_gitlab_keys_are_read() -> None:
    """Every GitLab Runner key of [runners.machine] and its autoscaling periods is read."""
    text = (
        RUNNER + MACHINE + "IdleCount = 2\nIdleTime = 30\nMaxBuilds = 5\n"
        'MachineOptions = ["virtualbox-memory=512"]\n'
        "[[runners.machine.autoscaling]]\n"
        'Periods = ["* * 9-17 * * mon-fri *"]\nTimezone = "UTC"\nIdleCount = 9\nIdleTime = 600\n'
    )
    config = parse_config(text, "config.toml")
    assert config.warnings == ()
    assert config.runners[0].machine == MachineConfig(
        machine_driver="virtualbox",
        machine_name="auto-%s",
        machine_options=("virtualbox-memory=512",),
        idle_count=2,
        idle_time=30.0,
        max_builds=5,
        autoscaling=(AutoscalingConfig(("* * 9-17 * * mon-fri *",), "UTC", 9, 600.0),),
    )


@pytest.mark.parametrize(
    ("extra", "key", "fragment"),
    [
        ("IdleCount = -1\n", "runners[0].machine.IdleCount", "an integer from 0 to 1000"),
        ("IdleTime = 'long'\n", "runners[0].machine.IdleTime", "a number of seconds"),
        ("MaxBuilds = 1.5\n", "runners[0].machine.MaxBuilds", "an integer"),
        ("MachineOptions = 'x'\n", "runners[0].machine.MachineOptions", "a list of strings"),
        (
            "[[runners.machine.autoscaling]]\nPeriods = ['* * 9-17 * * mon-fri']\n"
            "Timezone = 'Mars/Olympus'\n",
            "runners[0].machine.autoscaling[0].Timezone",
            "an IANA time zone name",
        ),
        (
            "[[runners.machine.autoscaling]]\nPeriods = ['* * 25 * * * *']\n",
            "runners[0].machine.autoscaling[0].Periods",
            "hour field: '25'",
        ),
        (
            "[[runners.machine.autoscaling]]\nIdleCount = 1\n",
            "runners[0].machine.autoscaling[0].Periods",
            "a non-empty list",
        ),
    ],
)
def test_bad_values_exit_2_naming_the_key(
    invoke: Invoke, tmp_path: Path, extra: str, key: str, fragment: str
) -> None:
    """`run` with a bad [runners.machine] value exits 2 with one line naming the full key."""
    path = tmp_path / "config.toml"
    path.write_text(RUNNER + MACHINE + extra)
    done = invoke(["run", "--config", str(path)])
    assert done.status == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert f"key '{key}'" in lines[0] and fragment in lines[0]


@pytest.mark.parametrize("name", ["auto", "auto-%s-%s", "auto_%s", "auto-%d-%s", ""])
def test_machine_name_needs_one_placeholder(name: str) -> None:
    """MachineName must hold exactly one %s and only letters, digits, dots and dashes."""
    text = RUNNER + MACHINE.replace('"auto-%s"', f'"{name}"')
    with pytest.raises(ConfigError, match=r"runners\[0\]\.machine\.MachineName"):
        parse_config(text, "config.toml")


def test_machine_executors_need_a_driver() -> None:
    """A docker+machine runner without MachineDriver is an error naming the key."""
    text = RUNNER + '[runners.machine]\nMachineName = "auto-%s"\n'
    with pytest.raises(ConfigError, match=r"runners\[0\]\.machine\.MachineDriver"):
        parse_config(text, "config.toml")
