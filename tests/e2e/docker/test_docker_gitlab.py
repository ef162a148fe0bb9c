"""A GitLab coordinator's job, with API v4's `image` and `services`, runs in containers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support.engine import IMAGE, NOTHING, WEB, Engine, leftovers
from tests.support.fake_coordinator import FakeCoordinator, gitlab_config
from tests.support.runner import RunnerProcess


def test_api_v4_image_and_services_are_honoured(tmp_path: Path, engine: Engine) -> None:
    fake = FakeCoordinator(long_poll=2.0).start()
    home = tmp_path / "home"
    home.mkdir()
    extra = (
        'executor = "docker"\n[runners.docker]\n'
        f'host = "{engine.host}"\npull_policy = "if-not-present"\nimage = "no/default"\n'
    )
    runner = RunnerProcess(home, gitlab_config(fake, extra=extra))
    try:
        runner.start()
        # As GitLab sends them: nulls for what the .gitlab-ci.yml did not say.
        image: dict[str, Any] = {
            "name": IMAGE,
            "entrypoint": None,
            "ports": [],
            "pull_policy": None,
        }
        service = {
            "name": WEB,
            "alias": "www",
            "command": None,
            "entrypoint": None,
            "ports": [],
            "variables": [{"key": "UNUSED", "value": "1"}],
        }
        job = fake.add_job(
            "in-container",
            ["cat /etc/alloy-image-marker", "wget -qO- http://www/index.html"],
            extra={"image": image, "services": [service]},
        )
        fake.wait_done([job], timeout=60)
        trace = bytes(job.trace).decode()
        assert job.status == "success", trace
        assert "only in the image" in trace and "hello from web" in trace
        assert leftovers("gl") == NOTHING
    finally:
        runner.stop()
        fake.stop()
