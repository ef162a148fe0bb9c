"""Cache policies and artifact `when` are enums read from, and written back to, the job payload."""

from __future__ import annotations

import pytest

from alloy_runner.build.job import Artifact, ArtifactWhen, Cache, CachePolicy
from alloy_runner.exceptions import JobPayloadError


def test_wire_values_round_trip() -> None:
    cache = Cache.from_payload({"key": "k", "paths": ["a"], "policy": "pull", "when": "always"})
    assert (cache.policy, cache.when) == (CachePolicy.PULL, ArtifactWhen.ALWAYS)
    assert cache.to_payload()["policy"] == "pull"
    assert Cache.from_payload(cache.to_payload()) == cache
    artifact = Artifact.from_payload({"paths": ["out"], "when": "on_failure"})
    assert artifact.when is ArtifactWhen.ON_FAILURE
    assert artifact.to_payload()["when"] == "on_failure"
    assert Cache.from_payload({}).policy is CachePolicy.PULL_PUSH


@pytest.mark.parametrize(
    ("policy", "pulls", "pushes"),
    [("pull-push", True, True), ("pull", True, False), ("push", False, True)],
)
def test_what_a_policy_moves(policy: str, pulls: bool, pushes: bool) -> None:
    assert (CachePolicy(policy).pulls, CachePolicy(policy).pushes) == (pulls, pushes)


def test_an_unknown_value_is_a_payload_error() -> None:
    with pytest.raises(JobPayloadError, match="'policy' is 'sometimes', not one of pull-push"):
        Cache.from_payload({"policy": "sometimes"})
    with pytest.raises(JobPayloadError, match="'when' is 'never'"):
        Artifact.from_payload({"when": "never"})
