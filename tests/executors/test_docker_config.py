"""`[runners.docker]` and the docker executor's rules: keys, names, allowed images, policies."""

from __future__ import annotations

from pathlib import Path

import pytest

from alloy_runner.config.load import parse_config
from alloy_runner.config.model import DockerConfig
from alloy_runner.exceptions import ConfigError, ExecutorConfigError
from alloy_runner.executors.docker.containers import resources, user_volumes
from alloy_runner.executors.docker.images import image_allowed, pull_policies, split_name
from alloy_runner.executors.docker.names import service_hostnames
from tests.support import run_cli

RUNNER = '[[runners]]\nname = "d"\nexecutor = "docker"\n[runners.docker]\n'


def test_gitlab_keys_are_read() -> None:
    text = RUNNER + (
        'image = "alpine:3"\nprivileged = true\nvolumes = ["/cache", "/srv:/srv:ro"]\n'
        'pull_policy = ["always", "if-not-present"]\nallowed_images = ["alpine:*"]\n'
        'allowed_pull_policies = ["if-not-present"]\nnetwork_mode = "host"\n'
        'memory = "512m"\ncpus = "1.5"\nshm_size = 67108864\ndns = ["10.0.0.2"]\n'
        'extra_hosts = ["db:10.0.0.3"]\nhost = "tcp://10.0.0.9:2376"\ntls_verify = true\n'
        'tls_cert_path = "/certs"\ndisable_cache = true\nwait_for_services_timeout = 5\n'
    )
    config = parse_config(text, "config.toml")
    assert config.warnings == ()
    assert config.runners[0].docker == DockerConfig(
        image="alpine:3",
        privileged=True,
        volumes=("/cache", "/srv:/srv:ro"),
        pull_policy=("always", "if-not-present"),
        allowed_images=("alpine:*",),
        allowed_pull_policies=("if-not-present",),
        network_mode="host",
        memory=512 * 1024**2,
        cpus=1.5,
        shm_size=64 * 1024**2,
        dns=("10.0.0.2",),
        extra_hosts=("db:10.0.0.3",),
        host="tcp://10.0.0.9:2376",
        tls_verify=True,
        tls_cert_path="/certs",
        disable_cache=True,
        wait_for_services_timeout=5.0,
    )
    assert parse_config(RUNNER, "c").runners[0].docker.pull_policy == ("always",)


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ('pull_policy = "sometimes"', "runners[0].docker.pull_policy"),
        ("pull_policy = []", "runners[0].docker.pull_policy"),
        ('memory = "lots"', "runners[0].docker.memory"),
        ('cpus = "many"', "runners[0].docker.cpus"),
        ('host = "10.0.0.9"', "runners[0].docker.host"),
        ('volumes = ["relative:path"]', "runners[0].docker.volumes"),
        ('extra_hosts = ["nocolon"]', "runners[0].docker.extra_hosts"),
        ('privileged = "yes"', "runners[0].docker.privileged"),
        ('helper_image = "x"', "helper_image"),
        ('cap_add = ["NET_ADMIN"]', "runners[0].docker.cap_add.*not supported"),
        ('user = "nobody"', "runners[0].docker.user.*not supported"),
        (
            'pull_policy = "never"\nallowed_pull_policies = ["always"]',
            "allowed_pull_policies",
        ),
    ],
)
def test_bad_values_name_their_key(extra: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        parse_config(RUNNER + extra + "\n", "config.toml")


def test_a_bad_docker_key_exits_2_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(RUNNER + 'pull_policy = "sometimes"\n')
    done = run_cli(["run", "--config", str(path)], tmp_path)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and "pull_policy" in done.stderr


@pytest.mark.parametrize(
    ("image", "names"),
    [
        ("postgres:16", ("postgres",)),
        ("tutum/wordpress", ("tutum__wordpress", "tutum-wordpress")),
        (
            "registry.local:5000/group/app:1@sha256:ab",
            ("registry.local__group__app", "registry.local-group-app"),
        ),
    ],
)
def test_service_names_derive_from_the_image(image: str, names: tuple[str, ...]) -> None:
    assert service_hostnames(image) == names


def test_image_names_split_into_repository_and_tag() -> None:
    assert split_name("busybox") == ("busybox", "latest")
    assert split_name("localhost:5000/a/b") == ("localhost:5000/a/b", "latest")
    assert split_name("localhost:5000/a/b:2") == ("localhost:5000/a/b", "2")
    assert split_name("a@sha256:ff") == ("a", "sha256:ff")


def test_allowed_images_match_as_gitlab_globs() -> None:
    allowed = ("ruby:*", "alloy-test/*", "registry.local/**")
    assert image_allowed("ruby:3.3", allowed)
    assert image_allowed("alloy-test/busybox", allowed)
    assert not image_allowed("alloy-test/deep/er", allowed)  # * stays within a segment
    assert image_allowed("registry.local/a/b/c:1", allowed)
    assert not image_allowed("python:3", allowed)
    assert image_allowed("anything", ())


def test_a_job_pull_policy_must_be_allowed() -> None:
    config = DockerConfig(pull_policy=("if-not-present",))
    assert pull_policies((), config) == ("if-not-present",)
    assert pull_policies(("if-not-present",), config) == ("if-not-present",)
    with pytest.raises(ExecutorConfigError, match="allowed pull policies"):
        pull_policies(("always",), config)
    wider = DockerConfig(pull_policy=("never",), allowed_pull_policies=("always", "never"))
    assert pull_policies(("always", "never"), wider) == ("always", "never")


def test_resources_and_volumes_become_create_options() -> None:
    config = DockerConfig(
        memory=1024,
        cpus=0.5,
        shm_size=2048,
        dns=("1.1.1.1",),
        extra_hosts=("a:1.2.3.4",),
        volumes=("/cache", "/srv:/data:ro"),
    )
    assert resources(config) == {
        "privileged": False,
        "mem_limit": 1024,
        "nano_cpus": 500_000_000,
        "shm_size": 2048,
        "dns": ["1.1.1.1"],
        "extra_hosts": {"a": "1.2.3.4"},
    }
    binds, mounts, caches, scratch = user_volumes(config, "r", "proj", "b")
    assert binds == ["/srv:/data:ro"] and scratch == []
    assert [m["Target"] for m in mounts] == ["/cache"] and mounts[0]["Source"] == caches[0]
    assert user_volumes(config, "r", "proj", "c")[2] == caches, "kept between builds"
    fresh = DockerConfig(volumes=("/cache",), disable_cache=True)
    _, mounts, caches, scratch = user_volumes(fresh, "r", "p", "alloy-r-job-1-vol-x")
    assert caches == [] and mounts[0]["Source"] == scratch[0]
    assert scratch[0].startswith("alloy-r-job-1-vol-x-")
