"""GitLab Runner's config.toml keys: implemented, refused with exit 2, warned, or silently read."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from alloy_runner.config.load import parse_config
from alloy_runner.exceptions import ConfigError
from tests.support import run_cli

RUNNER = '[[runners]]\nname = "a"\n'


def test_hooks_and_gitlab_runner_keys_are_read() -> None:
    config = parse_config(
        RUNNER
        + 'pre_get_sources_script = "echo 1"\npost_get_sources_script = "echo 2"\n'
        + 'pre_build_script = "echo 3"\npost_build_script = "echo 4"\n'
        + 'clone_url = "https://mirror.example:8443/git"\ndebug_trace_disabled = true\n'
        + "id = 42\ntoken_obtained_at = 2026-01-02T03:04:05Z\n"
        + "token_expires_at = 0001-01-01T00:00:00Z\n",
        "config.toml",
    )
    runner = config.runners[0]
    assert (runner.hooks.pre_get_sources_script, runner.hooks.post_build_script) == (
        "echo 1",
        "echo 4",
    )
    assert runner.clone_url == "https://mirror.example:8443/git"
    assert runner.debug_trace_disabled is True
    assert runner.token_obtained_at == datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    assert runner.token_expires_at is None  # GitLab's zero time: no expiry
    assert config.warnings == ()  # bookkeeping keys are accepted silently


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        pytest.param(
            RUNNER + "custom_build_dir = {enabled = true}\n", "custom_build_dir", id="custom"
        ),
        pytest.param(RUNNER + 'tls-cert-file = "c.pem"\n', "tls-cert-file", id="client-cert"),
        pytest.param(RUNNER + "[runners.kubernetes]\nimage = 'x'\n", "kubernetes", id="kube"),
        pytest.param(
            RUNNER + "[runners.cache.s3]\nServerSideEncryption = 'S3'\n",
            "ServerSideEncryption",
            id="sse",
        ),
        pytest.param(
            RUNNER + "[runners.feature_flags]\nFF_NOT_A_FLAG = true\n", "FF_NOT_A_FLAG", id="ff"
        ),
        pytest.param(RUNNER + "[runners.cache]\nType = 'gcs'\n", "Type", id="gcs"),
        pytest.param(RUNNER + "[runners.cache]\nType = 's3'\n", "BucketName", id="no-bucket"),
    ],
)
def test_keys_that_would_change_jobs_are_refused(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        parse_config(text, "config.toml")


def test_keys_that_change_nothing_observable_warn_once() -> None:
    config = parse_config(
        "connection_max_age = '15m'\n[session_server]\nlisten_address = '[::]:8093'\n"
        + RUNNER
        + "unhealthy_requests_limit = 3\n[runners.feature_flags]\nFF_USE_FASTZIP = true\n"
        + "FF_ENABLE_JOB_CLEANUP = false\n",
        "config.toml",
    )
    assert len(config.warnings) == 4, config.warnings
    assert any("session_server" in w and "not supported" in w for w in config.warnings)
    assert any("FF_USE_FASTZIP" in w for w in config.warnings)
    assert dict(config.runners[0].feature_flags) == {
        "FF_USE_FASTZIP": True,
        "FF_ENABLE_JOB_CLEANUP": False,
    }


def test_run_refuses_an_unsupported_gitlab_key_with_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(RUNNER + 'pre_clone_script = "rm -rf /"\n', encoding="utf-8")
    done = run_cli(["run", "--config", str(path)], home=tmp_path)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "pre_clone_script" in lines[0], done.stderr


def test_log_format_runner_is_accepted() -> None:
    assert parse_config('log_format = "runner"\n', "c").log_format == "runner"


def test_clone_url_replaces_scheme_host_and_prefix_and_keeps_the_credentials() -> None:
    from alloy_runner.build.script import with_clone_url

    repo = "https://gitlab-ci-token:jt-1@gitlab.example.com/group/app.git"
    assert (
        with_clone_url(repo, "http://mirror.internal:8080/git/")
        == "http://gitlab-ci-token:jt-1@mirror.internal:8080/git/group/app.git"
    )
    assert with_clone_url(repo, "") == repo
    assert with_clone_url("file:///srv/repo", "http://mirror") == "file:///srv/repo"


def test_an_expired_token_is_a_warning() -> None:
    config = parse_config(
        RUNNER + "token_expires_at = 2020-01-01T00:00:00Z\n"
        '[[runners]]\nname = "b"\ntoken_expires_at = 2999-01-01T00:00:00Z\n',
        "config.toml",
    )
    assert config.warnings == (
        "config.toml: key 'runners[0].token_expires_at': the runner's token expired at "
        "2020-01-01T00:00:00+00:00; register the runner again",
    )
