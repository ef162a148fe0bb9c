"""Hostile config.toml values: every one is refused with a ConfigError naming the key.

Issue 12: values that made the runner allocate without bound, loop, or print a
traceback are refused at load; random and mutated files never raise anything
but ConfigError.
"""

from __future__ import annotations

import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alloy_runner.config.load import parse_config
from alloy_runner.exceptions import ConfigError

RUNNER = '[[runners]]\nname = "r"\n'
MACHINE = (
    '[[runners]]\nname = "m"\nexecutor = "docker+machine"\n'
    '[runners.machine]\nMachineName = "m-%s"\nMachineDriver = "local"\n'
)


@pytest.mark.parametrize(
    ("text", "key", "fragment"),
    [
        ("concurrent = 100000000000\n", "concurrent", "from 1 to 10000"),
        (RUNNER + "request_concurrency = 100000000000\n", "request_concurrency", "from 1 to 100"),
        (RUNNER + "limit = 10001\n", "limit", "from 0 to 10000"),
        (RUNNER + "output_limit = 10000000000\n", "output_limit", "from 1 to 16777216"),
        (RUNNER + "kill_timeout = inf\n", "kill_timeout", "seconds >= 0"),
        (RUNNER + "kill_timeout = nan\n", "kill_timeout", "seconds >= 0"),
        (RUNNER + "kill_timeout = 1e400\n", "kill_timeout", "seconds >= 0"),
        ("shutdown_timeout = 1e12\n", "shutdown_timeout", "<= 604800"),
        ("check_interval = -inf\n", "check_interval", "seconds >= 0"),
        ("[telemetry.otlp]\ninterval = nan\n", "telemetry.otlp.interval", "> 0"),
        (MACHINE + "IdleCount = 100000000\n", "IdleCount", "from 0 to 1000"),
        (MACHINE + "MaxBuilds = 10000000\n", "MaxBuilds", "from 0 to 1000000"),
        (MACHINE + "IdleTime = inf\n", "IdleTime", "seconds >= 0"),
        (RUNNER + 'environment = ["AB"]\n', "environment", "KEY=VALUE"),
        (RUNNER + 'environment = ["=x"]\n', "environment", "KEY=VALUE"),
        ('[[runners]]\nname = "a\\nb"\n', "name", "control characters"),
        ('[[runners]]\nname = "a\\u0000b"\n', "name", "control characters"),
        ('[[runners]]\nname = ""\n', "name", "control characters"),
        ('[[runners]]\nname = "r"\nurl = "http://[::1"\ntoken = "t"\n', "url", "URL"),
        ('[[runners]]\nname = "r"\nurl = "http://"\ntoken = "t"\n', "url", "URL"),
        ('[[runners]]\nname = "r"\nurl = "http://h:x/"\ntoken = "t"\n', "url", "URL"),
        ('[telemetry.otlp]\nendpoint = "http://[::1"\n', "endpoint", "URL"),
        ('[profiling]\nserver_address = "http://[::1"\n', "server_address", "URL"),
        (
            MACHINE + '[[runners.machine.autoscaling]]\nPeriods = ["* * * 31 2 *"]\n',
            "Periods",
            "never matches",
        ),
    ],
)
def test_a_hostile_value_is_refused_naming_the_key(text: str, key: str, fragment: str) -> None:
    """The error names the key and what is allowed; no value is clamped in silence."""
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "config.toml")
    message = str(caught.value)
    assert key in message
    assert fragment in message
    assert "\n" not in message


def test_february_29th_is_a_date() -> None:
    """A period on February 29th matches in leap years: it is accepted."""
    config = parse_config(
        MACHINE + '[[runners.machine.autoscaling]]\nPeriods = ["* * * 29 2 *"]\n', "config.toml"
    )
    assert config.runners[0].machine is not None


def test_bounds_are_inclusive() -> None:
    """The largest allowed values load."""
    config = parse_config(
        "concurrent = 10000\n" + RUNNER + "request_concurrency = 100\nlimit = 10000\n",
        "config.toml",
    )
    assert config.concurrent == 10000
    assert config.runners[0].request_concurrency == 100


def test_a_deeply_nested_array_is_one_error() -> None:
    """A TOML array nested 5,000 deep is a ConfigError, not a RecursionError."""
    text = "x = " + "[" * 5000 + "]" * 5000 + "\n"
    with pytest.raises(ConfigError):
        parse_config(text, "config.toml")


_KEYS = [
    "concurrent",
    "check_interval",
    "shutdown_timeout",
    "log_level",
    "metrics_server",
    "spool_recovery",
]
_RUNNER_KEYS = ["name", "limit", "request_concurrency", "output_limit", "kill_timeout", "url"]
_SCALARS = st.one_of(
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(alphabet=string.printable + "\x00\u2028", max_size=20),
    st.booleans(),
)


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value != value:
            return "nan"
        if value in (float("inf"), float("-inf")):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, int):
        return str(value)
    text = str(value)
    escaped = "".join(c if c.isprintable() and c not in '"\\' else f"\\u{ord(c):04x}" for c in text)
    return f'"{escaped}"'


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    top=st.dictionaries(st.sampled_from(_KEYS), _SCALARS, max_size=4),
    runner=st.dictionaries(st.sampled_from(_RUNNER_KEYS), _SCALARS, max_size=4),
)
def test_random_values_load_or_raise_config_error(
    top: dict[str, object], runner: dict[str, object]
) -> None:
    """Whatever the values, loading either succeeds or raises ConfigError (never another)."""
    text = "".join(f"{k} = {_toml_value(v)}\n" for k, v in top.items())
    text += "[[runners]]\n" + "".join(f"{k} = {_toml_value(v)}\n" for k, v in runner.items())
    try:
        parse_config(text, "config.toml")
    except ConfigError as exc:
        assert "\n" not in str(exc)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300).map(lambda b: b.decode("utf-8", "replace")))
def test_random_text_loads_or_raises_config_error(text: str) -> None:
    """Arbitrary text is a TOML syntax error or a config, never a traceback."""
    try:
        config = parse_config(text, "config.toml")
    except ConfigError as exc:
        assert str(exc).startswith("config.toml: ")
    else:
        assert config.concurrent >= 1
