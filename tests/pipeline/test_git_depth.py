"""GIT_DEPTH becomes the payload's git_info.depth, as GitLab turns it (Ruby's `to_i`)."""

from __future__ import annotations

import pytest

from alloy_runner.build.job import Variable
from alloy_runner.pipeline.submit import git_depth


@pytest.mark.parametrize(
    ("values", "depth"),
    [
        ((), 0),
        (("1",), 1),
        (("50",), 50),
        (("3 commits",), 3),
        (("none",), 0),
        (("5", "2"), 2),
        (("1_0",), 10),  # Ruby: "1_0".to_i == 10
        (("1__0",), 1),
        (("_1",), 0),
        ((" -2x",), -2),
    ],
)
def test_the_last_git_depth_is_the_fetch_depth(values: tuple[str, ...], depth: int) -> None:
    variables = [Variable("OTHER", "9"), *(Variable("GIT_DEPTH", v) for v in values)]
    assert git_depth(variables) == depth
