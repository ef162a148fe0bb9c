"""`image:` and `services:` of GitLab CI YAML are carried into the API v4 job payload."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from alloy_runner.build.image import Image, Service
from alloy_runner.build.job import Job
from alloy_runner.exceptions import JobPayloadError, PipelineError
from alloy_runner.pipeline.ci_yaml import parse_pipeline
from alloy_runner.pipeline.repo import Repo
from alloy_runner.pipeline.submit import plan_jobs

STEPS = [{"name": "script", "script": ["true"]}]  # a payload needs something to run


def parse(text: str):  # type: ignore[no-untyped-def]
    return parse_pipeline(textwrap.dedent(text), source="p.yml")


def test_image_and_services_in_both_forms_reach_the_payload() -> None:
    spec = parse(
        """
        image: alpine:3
        services:
          - postgres:16
        a:
          script: x
        b:
          image: {name: "debian:12", entrypoint: [""], pull_policy: [always, if-not-present]}
          services:
            - name: tutum/wordpress
              alias: wp blog
              command: ["serve", "-p", "80"]
              entrypoint: ["/bin/sh", "-c"]
              variables: {MODE: test, N: 2}
          script: x
        """
    )
    a, b = spec.jobs
    assert a.image == Image("alpine:3") and a.services == (Service("postgres:16"),)
    assert b.image == Image("debian:12", ("",), ("always", "if-not-present"))
    wordpress = Service(
        "tutum/wordpress",
        "wp blog",
        ("serve", "-p", "80"),
        ("/bin/sh", "-c"),
        (("MODE", "test"), ("N", "2")),
    )
    assert b.services == (wordpress,)
    assert wordpress.aliases == ("wp", "blog")
    planned = plan_jobs([a, b], [1, 2], pipeline_id=1, repo=Repo(root=Path("/nonexistent/p")))
    payload = planned[1].job.to_payload()
    assert payload["image"] == {
        "name": "debian:12",
        "entrypoint": [""],
        "pull_policy": ["always", "if-not-present"],
    }
    assert payload["services"][0]["variables"] == [
        {"key": "MODE", "value": "test"},
        {"key": "N", "value": "2"},
    ]
    again = Job.from_payload(payload)
    assert again.image == b.image and again.services == b.services
    assert (
        "image"
        not in plan_jobs(
            [parse("c: {script: x}\n").jobs[0]],
            [3],
            pipeline_id=1,
            repo=Repo(root=Path("/nonexistent/p")),
        )[0].job.to_payload()
    )


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("j: {script: x, image: {entrypoint: [a]}}\n", "image needs a name"),
        ("j: {script: x, image: {name: a, pull_policy: sometimes}}\n", "pull_policy must be one"),
        ("j: {script: x, services: postgres}\n", "services must be a list"),
        ("j: {script: x, services: [{name: a, ports: [1]}]}\n", "unknown key 'ports'"),
    ],
)
def test_malformed_image_or_services_fail_with_the_line(yaml_text: str, message: str) -> None:
    with pytest.raises(PipelineError, match=rf"p\.yml:1: job 'j': .*{message}"):
        parse(yaml_text)


def test_a_malformed_payload_image_is_a_payload_error() -> None:
    with pytest.raises(JobPayloadError, match="image"):
        Job.from_payload({"id": 1, "steps": STEPS, "image": 5})
    assert Job.from_payload({"id": 1, "steps": STEPS, "image": "busybox"}).image == Image("busybox")


def test_a_null_entrypoint_keeps_the_images_own() -> None:
    """GitLab sends `entrypoint: null` when the YAML gave none; `[""]` clears the image's."""
    kept = Job.from_payload({"id": 1, "steps": STEPS, "image": {"name": "x", "entrypoint": None}})
    cleared = Job.from_payload(
        {"id": 1, "steps": STEPS, "image": {"name": "x", "entrypoint": [""]}}
    )
    assert kept.image == Image("x") and kept.image.entrypoint is None
    assert cleared.image is not None and cleared.image.entrypoint == ("",)
    service = Job.from_payload(
        {
            "id": 1,
            "steps": STEPS,
            "services": [{"name": "s", "alias": None, "entrypoint": None, "command": None}],
        }
    ).services[0]
    assert service == Service("s")
