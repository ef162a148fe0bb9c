"""Object names of the distributed cache, as GitLab Runner names them."""

from __future__ import annotations

from pathlib import Path

from alloy_runner.cache.remote import RemoteCache
from alloy_runner.config.model import CacheConfig, RunnerConfig


class NoStore:
    def download(self, name: str, dest: Path) -> bool:
        raise AssertionError("not called")

    def upload(self, name: str, source: Path) -> None:
        raise AssertionError("not called")


def test_object_names_per_runner_shared_and_with_a_path() -> None:
    runner = RunnerConfig(name="r", url="https://ci.test", token="glrt-abcdefgh12345")
    own = RemoteCache(CacheConfig(type="s3"), runner, NoStore())
    assert own.object_name("42", "deps-main") == "runner/glrt-abc/project/42/deps-main"
    shared = RemoteCache(CacheConfig(type="s3", shared=True, path="ci/"), runner, NoStore())
    assert shared.object_name("42", "deps/../x") == "ci/project/42/deps_.._x"
    spool = RemoteCache(CacheConfig(type="s3"), RunnerConfig(name="local one"), NoStore())
    assert spool.object_name("app", "k") == "runner/local_one/project/app/k"
