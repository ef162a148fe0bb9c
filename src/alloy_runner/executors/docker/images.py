"""Images: which a job may use (`allowed_images`, `allowed_pull_policies`) and how to get them."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence

import docker
import docker.errors

from alloy_runner.config.model import DockerConfig
from alloy_runner.exceptions import ExecutorConfigError, ImagePullError
from alloy_runner.executors.docker.engine import UNREACHABLE, call


@functools.cache
def _pattern(glob: str) -> re.Pattern[str]:
    """Translate an `allowed_images` pattern: `*` stays within a path segment, `**` does not."""
    out = []
    for part in re.split(r"(\*\*|\*|\?)", glob):
        out.append({"**": ".*", "*": "[^/]*", "?": "[^/]"}.get(part, re.escape(part)))
    return re.compile("".join(out))


def image_allowed(image: str, allowed: Sequence[str]) -> bool:
    return not allowed or any(_pattern(p).fullmatch(image) for p in allowed)


def check_image(image: str, config: DockerConfig, what: str) -> None:
    """Refuse an image the job chose that `allowed_images` does not match."""
    if not image_allowed(image, config.allowed_images):
        raise ExecutorConfigError(
            f"the {what} image {image!r} is not allowed by [runners.docker] allowed_images"
            f" ({', '.join(config.allowed_images)})"
        )


def pull_policies(asked: Sequence[str], config: DockerConfig) -> tuple[str, ...]:
    """Return the pull policies for an image: the job's if allowed, else the runner's."""
    if not asked:
        return config.pull_policy
    allowed = config.allowed_pull_policies or config.pull_policy
    refused = [p for p in asked if p not in allowed]
    if refused:
        raise ExecutorConfigError(
            f"pull_policy ({', '.join(asked)}) is not one of the runner's allowed pull"
            f" policies ({', '.join(allowed)})"
        )
    return tuple(asked)


def split_name(image: str) -> tuple[str, str]:
    """Return (repository, tag or digest) of an image name; the tag defaults to latest."""
    if "@" in image:
        repo, _, digest = image.partition("@")
        return repo, digest
    slash = image.rfind("/")
    colon = image.rfind(":")
    if colon > slash:
        return image[:colon], image[colon + 1 :]
    return image, "latest"


def _present(client: docker.DockerClient, image: str) -> bool:
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        return False
    return True


def _pull(client: docker.DockerClient, image: str) -> None:
    repo, tag = split_name(image)
    client.api.pull(repo, tag=tag)
    client.images.get(image)  # the engine pulled what it was asked for


async def ensure_image(
    client: docker.DockerClient,
    image: str,
    policies: Sequence[str],
    log: Callable[[str], None],
) -> None:
    """Make `image` present by the first of `policies` that works; raise ImagePullError."""
    failures = []
    for policy in policies:
        try:
            if policy != "always" and await call(_present, client, image):
                log(f"Using locally found image {image}")
                return
            if policy == "never":
                failures.append("it is not present and pull_policy is never")
                continue
            log(f"Pulling docker image {image} (pull_policy {policy}) ...")
            await call(_pull, client, image)
            return
        except docker.errors.APIError as exc:
            failures.append(f"pull_policy {policy}: {exc.explanation or exc}")
        except UNREACHABLE as exc:
            failures.append(f"pull_policy {policy}: {exc}")
    raise ImagePullError(f"failed to pull image {image!r}: {'; '.join(failures)}")
