"""`[runners.feature_flags]` through the real config loader: each treatment of the table.

The table (config/feature_flags.py) is checked against GitLab Runner's own list when
its source is on this machine, and docs/configuration.md against the table.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from alloy_runner.config import feature_flags
from alloy_runner.config.feature_flags import FLAGS, Treatment
from alloy_runner.config.load import parse_config
from alloy_runner.config.model import ExecutorName
from alloy_runner.exceptions import ConfigError

REPO = Path(__file__).resolve().parents[2]
GITLAB_RUNNER = Path("/work/.mirror/gitlabhq+gitlab-runner/repo")


def load(flags: str, executor: str = "shell") -> tuple[dict[str, bool], tuple[str, ...]]:
    """Load one runner with `flags` as its [runners.feature_flags]; return them and warnings."""
    text = f'[[runners]]\nname = "a"\nexecutor = "{executor}"\n[runners.feature_flags]\n{flags}'
    config = parse_config(text, "config.toml")
    return dict(config.runners[0].feature_flags), config.warnings


def refusal(flags: str, executor: str = "shell") -> str:
    with pytest.raises(ConfigError) as caught:
        load(flags, executor)
    return str(caught.value)


def test_a_flag_this_runner_works_as_is_accepted_silently() -> None:
    """ONE_VALUE at the value this runner works as: kept, no warning (GitLab's default or not)."""
    flags, warnings = load("FF_TIMESTAMPS = false\nFF_SCRIPT_SECTIONS = false\n")
    assert flags == {"FF_TIMESTAMPS": False, "FF_SCRIPT_SECTIONS": False}
    assert warnings == ()


def test_a_flag_at_the_other_value_is_refused_with_one_line() -> None:
    """ONE_VALUE at the other value: one line naming the file, the key, why, and the fix."""
    message = refusal("FF_TIMESTAMPS = true\n")
    assert message == (
        "config.toml: key 'runners[0].feature_flags.FF_TIMESTAMPS': FF_TIMESTAMPS = true is "
        "not supported: this runner does not timestamp job log lines; remove it or set it "
        "to false"
    )
    assert "\n" not in message


@pytest.mark.parametrize(
    ("flags", "fix"),
    [
        ("FF_SCRIPT_SECTIONS = true", "set it to false"),
        ("FF_MASK_ALL_DEFAULT_TOKENS = true", "set it to false"),
        ("FF_USE_GIT_NATIVE_CLONE = true", "set it to false"),
        ("FF_USE_LEGACY_BASH_EVAL = true", "set it to false"),
        ("FF_EXPORT_HIGH_CARDINALITY_METRICS = false", "set it to true"),
    ],
)
def test_flags_that_would_change_what_a_job_runs_are_refused(flags: str, fix: str) -> None:
    name = flags.split(" ", maxsplit=1)[0]
    assert f"{flags} is not supported" in refusal(flags + "\n")
    assert refusal(flags + "\n").endswith(f"remove it or {fix}")
    assert name in refusal(flags + "\n")


def test_a_docker_flag_is_refused_on_docker_and_ignored_on_shell() -> None:
    """FF_NETWORK_PER_BUILD = false: docker makes a network per build; shell has no network."""
    assert "FF_NETWORK_PER_BUILD = false is not supported" in refusal(
        "FF_NETWORK_PER_BUILD = false\n", "docker"
    )
    assert "FF_DISABLE_UMASK_FOR_DOCKER_EXECUTOR = false is not supported" in refusal(
        "FF_DISABLE_UMASK_FOR_DOCKER_EXECUTOR = false\n", "docker"
    )
    assert load("FF_DISABLE_UMASK_FOR_DOCKER_EXECUTOR = true\n", "docker") == (
        {"FF_DISABLE_UMASK_FOR_DOCKER_EXECUTOR": True},
        (),
    )
    flags, warnings = load("FF_NETWORK_PER_BUILD = false\n", "shell")
    assert flags == {"FF_NETWORK_PER_BUILD": False}
    assert len(warnings) == 1
    assert "FF_NETWORK_PER_BUILD" in warnings[0]
    assert "the docker, docker+machine, docker-ssh+machine executors only" in warnings[0]
    assert load("FF_NETWORK_PER_BUILD = true\n", "docker")[1] == ()


@pytest.mark.parametrize("value", ["true", "false"])
@pytest.mark.parametrize(
    ("name", "concerns"),
    [
        ("FF_PRINT_POD_EVENTS", "kubernetes"),  # NOT_APPLICABLE
        ("FF_USE_WINDOWS_JOB_OBJECT", "Windows"),  # NOT_APPLICABLE
        ("FF_USE_FASTZIP", "archiver"),  # NOTHING_OBSERVABLE
        ("FF_USE_PARALLEL_CACHE_TRANSFER", "transfers"),  # NOTHING_OBSERVABLE
    ],
)
def test_flags_that_change_nothing_here_are_warned_and_ignored(
    name: str, concerns: str, value: str
) -> None:
    """Either value: kept, and one warning naming the key and what the flag concerns."""
    flags, warnings = load(f"{name} = {value}\n", "docker")
    assert flags == {name: value == "true"}
    assert len(warnings) == 1
    assert f"key 'runners[0].feature_flags.{name}'" in warnings[0]
    assert "has no effect on this runner" in warnings[0]
    assert concerns in warnings[0]


@pytest.mark.parametrize("value", ["true", "false"])
@pytest.mark.parametrize(
    "name",
    [
        "FF_ENABLE_JOB_CLEANUP",
        "FF_DISABLE_AUTOMATIC_TOKEN_ROTATION",
        "FF_USE_ADAPTIVE_REQUEST_CONCURRENCY",
        "FF_LOG_IMAGES_CONFIGURED_FOR_JOB",
        "FF_ENABLE_BASH_EXIT_CODE_CHECK",
    ],
)
def test_honoured_flags_are_kept_silently_at_either_value(name: str, value: str) -> None:
    assert load(f"{name} = {value}\n") == ({name: value == "true"}, ())


def test_an_unknown_name_and_a_non_boolean_are_refused() -> None:
    assert "one of GitLab Runner's feature flag names" in refusal("FF_NOT_A_FLAG = true\n")
    assert "expected true or false" in refusal('FF_TIMESTAMPS = "false"\n')


@pytest.mark.parametrize("executor", ["shell", "docker"])
def test_every_flag_loads_at_a_value_it_accepts(executor: str) -> None:
    """Every row of the table loads; the warnings are exactly the ignored flags'."""
    accepted = {
        name: flag.works_as if flag.works_as is not None else flag.gitlab_default
        for name, flag in FLAGS.items()
    }
    text = "".join(f"{name} = {str(value).lower()}\n" for name, value in accepted.items())
    flags, warnings = load(text, executor)
    assert flags == accepted
    warned = {name for w in warnings for name in re.findall(r"feature_flags\.(FF_\w+)", w)}
    ignored = (Treatment.NOT_APPLICABLE, Treatment.NOTHING_OBSERVABLE)
    expected = {n for n in FLAGS if feature_flags.treatment(n, ExecutorName(executor)) in ignored}
    assert warned == expected
    assert len(warnings) == len(expected)


def test_the_table_is_well_formed() -> None:
    """A ONE_VALUE row names the value this runner works as; no other row does."""
    for name, flag in FLAGS.items():
        assert name.startswith("FF_")
        assert (flag.works_as is not None) == (flag.treatment is Treatment.ONE_VALUE), name
        assert flag.reason and "\n" not in flag.reason and "|" not in flag.reason, name


def _gitlab_flags() -> dict[str, bool]:
    shown = subprocess.run(
        ["git", f"--git-dir={GITLAB_RUNNER}", "show", "HEAD:helpers/featureflags/flags.go"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    names = dict(re.findall(r'^\s*(\w+)\s+string = "(FF_\w+)"', shown, re.M))
    names['"FF_TEST_FEATURE"'] = "FF_TEST_FEATURE"
    rows = re.findall(r"Name:\s+([\w\"]+),\s*\n\s*DefaultValue:\s+(true|false)", shown)
    return {names[ident]: default == "true" for ident, default in rows}


@pytest.mark.skipif(not GITLAB_RUNNER.is_dir(), reason="GitLab Runner's source is not here")
def test_the_table_has_every_gitlab_flag_with_its_default() -> None:
    gitlab = _gitlab_flags()
    assert len(gitlab) > 40
    assert {name: flag.gitlab_default for name, flag in FLAGS.items()} == gitlab


def test_docs_hold_the_generated_table() -> None:
    """docs/configuration.md carries `python -m alloy_runner.config.feature_flags`'s table."""
    doc = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert feature_flags.render() in doc


def load_environment(environment: str, flags: str = "", executor: str = "shell") -> None:
    text = (
        f'[[runners]]\nname = "a"\nexecutor = "{executor}"\nenvironment = {environment}\n'
        f"[runners.feature_flags]\n{flags}"
    )
    parse_config(text, "config.toml")


def test_a_refused_value_in_the_runner_environment_exits_2_at_load() -> None:
    """GitLab Runner reads flags from the runner's `environment` too."""
    with pytest.raises(ConfigError) as caught:
        load_environment('["LANG=C", "FF_SCRIPT_SECTIONS=true"]')
    assert str(caught.value) == (
        "config.toml: key 'runners[0].environment': FF_SCRIPT_SECTIONS=true: "
        "FF_SCRIPT_SECTIONS = true is not supported: the job log does not show commands as "
        "collapsible sections; remove it or set it to false"
    )
    with pytest.raises(ConfigError, match="FF_NETWORK_PER_BUILD = false is not supported"):
        load_environment('["FF_NETWORK_PER_BUILD=0"]', executor="docker")


@pytest.mark.parametrize(
    ("environment", "flags", "executor"),
    [
        ('["FF_SCRIPT_SECTIONS=false"]', "", "shell"),  # the value this runner works as
        ('["FF_SCRIPT_SECTIONS=true", "FF_SCRIPT_SECTIONS=f"]', "", "shell"),  # the last
        ('["FF_SCRIPT_SECTIONS=true"]', "FF_SCRIPT_SECTIONS = false\n", "shell"),  # toml wins
        ('["FF_SCRIPT_SECTIONS=$ON"]', "", "shell"),  # resolved per job
        ('["FF_SCRIPT_SECTIONS=yes"]', "", "shell"),  # not a Go boolean: GitLab's default
        ('["FF_USE_JOB_ROUTER=true"]', "", "shell"),  # config-only: changes nothing
        ('["FF_NETWORK_PER_BUILD=false"]', "", "shell"),  # docker only
        ('["FF_ENABLE_JOB_CLEANUP=true"]', "", "shell"),  # honoured
    ],
)
def test_runner_environment_flags_that_load(environment: str, flags: str, executor: str) -> None:
    load_environment(environment, flags, executor)


def _gitlab_config_only() -> set[str]:
    """The flags GitLab Runner reads only from a runner's config (config.IsFeatureFlagOn,
    runner.IsFeatureFlagOn), never through a build (whose flags variables set)."""
    shown = subprocess.run(
        ["git", f"--git-dir={GITLAB_RUNNER}", "grep", "-n", r"featureflags\.[A-Z]", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    flags_go = subprocess.run(
        ["git", f"--git-dir={GITLAB_RUNNER}", "show", "HEAD:helpers/featureflags/flags.go"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    names = dict(re.findall(r'^\s*(\w+)\s+string = "(FF_\w+)"', flags_go, re.M))
    uses: dict[str, list[str]] = {}
    for line in shown.splitlines():
        path = line.split(":", 2)[1]
        if path.endswith("_test.go") or path.startswith(("helpers/featureflags/", "testing")):
            continue
        for ident in re.findall(r"featureflags\.(\w+)", line):
            uses.setdefault(ident, []).append(line)
    runner_level = re.compile(r"\b(config|runner|c\.config)\.IsFeatureFlagOn\(featureflags\.")
    return {
        names[ident]
        for ident, lines in uses.items()
        if ident in names and all(runner_level.search(line) for line in lines)
    }


@pytest.mark.skipif(not GITLAB_RUNNER.is_dir(), reason="GitLab Runner's source is not here")
def test_config_only_flags_are_those_gitlab_reads_from_the_runner_config_alone() -> None:
    gitlab = _gitlab_config_only()
    assert "FF_USE_JOB_ROUTER" in gitlab
    assert {name for name, flag in FLAGS.items() if flag.config_only} == gitlab
