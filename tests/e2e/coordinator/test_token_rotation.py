"""The real `alloy-runner run` rotates a runner token that expires, against the fake coordinator.

The token is obtained now and expires seconds later, so the rotation (at three
quarters of its lifetime) happens during the test. Under `metric_names = "both"`
the configuration-saved and saving-error counters are read under both names.
"""

from __future__ import annotations

import datetime
import signal
import tomllib

from tests.support import RunnerProcess, metric_value, wait_until
from tests.support.fake_coordinator import FakeCoordinator, StartFake, StartGitlabRunner

RESET = "authentication token reset to "
PREFIXES = ("ci_runner", "gitlab_runner")
NEW_TOKENS_EXPIRE = "2099-01-01T00:00:00Z"  # the fake's new tokens: no second rotation here


def _times(lifetime: float) -> str:
    """Return the config lines of a token obtained now that expires `lifetime` seconds later."""
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    expires = now + datetime.timedelta(seconds=lifetime)
    return (
        f"token_obtained_at = {now.isoformat().replace('+00:00', 'Z')}\n"
        f"token_expires_at = {expires.isoformat().replace('+00:00', 'Z')}  # soon\n"
    )


def _start(
    start_fake: StartFake, start: StartGitlabRunner, lifetime: float
) -> tuple[FakeCoordinator, RunnerProcess]:
    fake = start_fake()
    fake.token_expires_at = NEW_TOKENS_EXPIRE
    top = '# the operator\'s comment\nmetric_names = "both"\n'
    return fake, start(fake, top=top, extra=_times(lifetime))


def _counters(runner: RunnerProcess) -> dict[str, float]:
    """Return the saved and saving-error counters under both names."""
    families = runner.families()
    return {
        f"{prefix}_configuration_{what}_total": metric_value(
            families, f"{prefix}_configuration_{what}_total"
        )
        for prefix in PREFIXES
        for what in ("saved", "saving_error")
    }


def _expect(saved: float, errors: float) -> dict[str, float]:
    return {
        f"{prefix}_configuration_{what}_total": value
        for prefix in PREFIXES
        for what, value in (("saved", saved), ("saving_error", errors))
    }


def _file_runner(runner: RunnerProcess) -> dict[str, object]:
    with runner.config_path.open("rb") as handle:
        runners: list[dict[str, object]] = tomllib.load(handle)["runners"]
    return runners[0]


def _resets(runner: RunnerProcess) -> list[float]:
    """Return the reset_token 201 count under the ci_* name, then GitLab's (with its method)."""
    families = runner.families()
    ours = {"runner": "gl", "endpoint": "reset_token", "status": "201"}
    theirs = {"endpoint": "reset_token", "status": "201", "method": "post"}  # runner: the token
    return [
        metric_value(families, "ci_runner_api_request_statuses_total", ours),
        metric_value(families, "gitlab_runner_api_request_statuses_total", theirs),
    ]


def _stops_cleanly(runner: RunnerProcess) -> None:
    """SIGTERM ends the runner (its rotation waiting for the next due token) with status 0."""
    runner.signal(signal.SIGTERM)
    assert runner.wait(timeout=10) == 0, runner.stderr_text
    assert "Traceback" not in runner.stderr_text


def _takes_a_job_with(fake: FakeCoordinator, token: str) -> None:
    """A job queued now is taken with `token` and runs to success."""
    asked = len(fake.job_request_tokens)
    job = fake.add_job("after-rotation", ["echo rotated"])
    fake.wait_done([job], timeout=30)
    assert job.final is not None and job.final["state"] == "success"
    assert set(fake.job_request_tokens[asked:]) == {token}


def test_the_token_is_rotated_saved_and_used(
    start_fake: StartFake, start_gitlab_runner: StartGitlabRunner
) -> None:
    """At 7.5 s of a 10 s lifetime: a new token in the file (comments kept), in use, counted once.

    The lifetime leaves the runner seconds to start and be scraped at 0 first, also on a
    loaded machine.
    """
    fake, runner = _start(start_fake, start_gitlab_runner, lifetime=10)
    old = fake.runner_token
    assert _counters(runner) == _expect(saved=0, errors=0)  # from the first scrape
    assert _resets(runner) == [0.0, 0.0]
    runner.wait_for_line(RESET, timeout=20)
    wait_until(lambda: _counters(runner) == _expect(saved=1, errors=0), 10, what="a saved file")
    (new,) = fake.runner_tokens
    assert new != old
    saved = _file_runner(runner)
    assert saved["token"] == new
    obtained = saved["token_obtained_at"]
    assert isinstance(obtained, datetime.datetime)
    assert abs(datetime.datetime.now(datetime.UTC) - obtained) < datetime.timedelta(seconds=30)
    assert saved["token_expires_at"] == datetime.datetime(2099, 1, 1, tzinfo=datetime.UTC)
    text = runner.config_path.read_text()
    assert "# the operator's comment" in text and "metric_names" in text
    _takes_a_job_with(fake, new)
    assert _resets(runner) == [1.0, 1.0]  # the reset is an API call like the others
    assert old not in runner.stderr_text and new not in runner.stderr_text

    # A SIGHUP reads the new token from the file: no change to [[runners]], the token stays.
    start = len(runner.stderr_lines)
    runner.signal(signal.SIGHUP)
    runner.wait_for_line("SIGHUP: configuration reloaded", timeout=10, start=start)
    assert not any("[[runners]] changed" in line for line in runner.stderr_lines[start:])
    _takes_a_job_with(fake, new)
    assert _counters(runner) == _expect(saved=1, errors=0)
    _stops_cleanly(runner)


def test_a_failed_save_is_counted_and_the_runner_keeps_working(
    start_fake: StartFake, start_gitlab_runner: StartGitlabRunner
) -> None:
    """The file cannot be replaced: an error line, the saving-error count, the new token in use."""
    fake, runner = _start(start_fake, start_gitlab_runner, lifetime=12)
    old = fake.runner_token
    # The atomic save writes this file first; a directory there makes it fail, even for root.
    blocker = runner.home / f".config.toml.{runner.pid}.tmp"
    blocker.mkdir()
    before = runner.config_path.read_text()
    assert _counters(runner) == _expect(saved=0, errors=0)
    line = runner.wait_for_line("failed to save config", timeout=30)
    assert "ERROR" in line.string and "kept in memory only" in line.string
    wait_until(lambda: _counters(runner) == _expect(saved=0, errors=1), 10, what="a failed save")
    assert runner.config_path.read_text() == before
    (new,) = fake.runner_tokens
    assert new != old
    _takes_a_job_with(fake, new)
    assert runner.request("GET", "/-/ready").status == 200
    _stops_cleanly(runner)


def test_the_feature_flag_keeps_the_token_with_a_warning(
    start_fake: StartFake, start_gitlab_runner: StartGitlabRunner
) -> None:
    """FF_DISABLE_AUTOMATIC_TOKEN_ROTATION: a warning when the token is due; no reset, no save."""
    fake = start_fake()
    flag = "[runners.feature_flags]\nFF_DISABLE_AUTOMATIC_TOKEN_ROTATION = true\n"
    runner = start_gitlab_runner(fake, top='metric_names = "both"\n', extra=_times(2) + flag)
    before = runner.config_path.read_text()
    line = runner.wait_for_line("automatic token rotation is disabled", timeout=20)
    assert "WARNING" in line.string
    assert not any("has no effect" in ln for ln in runner.stderr_lines)  # the flag is honoured
    assert fake.count("reset_token") == 0
    assert runner.config_path.read_text() == before
    assert _counters(runner) == _expect(saved=0, errors=0)
    _stops_cleanly(runner)
