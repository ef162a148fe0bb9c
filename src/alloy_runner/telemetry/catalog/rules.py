"""Render docs/prometheus/gitlab-names.yml: recording rules that give `ci_*` series GitLab's names.

For operators who keep the default `metric_names = "alloyci"` but run
dashboards and alerts written for GitLab Runner. Each rule records one
`gitlab_runner_*` series from its `ci_*` family, as the GitLab naming of the
exposition would show it (telemetry/catalog/naming.py), with what PromQL can
derive: `runner_name` is copied from `runner` (which keeps the runner's name:
the token is not in the `ci_*` series), `system_id` is absent, and labels
GitLab's family lacks are summed away.

Regenerate with `python -m alloy_runner.telemetry.catalog.rules > docs/prometheus/gitlab-names.yml`.
"""

from __future__ import annotations

import sys

from alloy_runner.telemetry.catalog.instruments import CATALOG, Family, Kind
from alloy_runner.telemetry.catalog.naming import ACTIONS, GITLAB, METHODS, PATHS, GitlabFamily

COMMAND = "python -m alloy_runner.telemetry.catalog.rules > docs/prometheus/gitlab-names.yml"
GROUP = "alloy-runner-gitlab-names"


def _copy(expr: str, to: str, source: str) -> str:
    return f'label_replace({expr}, "{to}", "$1", "{source}", "(.*)")'


def _set(expr: str, to: str, value: str, source: str = "", regex: str = "") -> str:
    return f'label_replace({expr}, "{to}", "{value}", "{source}", "{regex}")'


def _by_endpoint(expr: str, to: str, values: dict[str, str]) -> str:
    for endpoint, value in values.items():
        expr = _set(expr, to, value, "endpoint", endpoint)
    return expr


def expression(family: Family, gitlab: GitlabFamily, series: str) -> str:
    """Return the PromQL that renames one `ci_*` series into the GitLab naming."""
    expr = series
    if "runner" in family.labels and "runner_name" in gitlab.labels:
        expr = _copy(expr, "runner_name", "runner")
    dropped = set(family.labels) - set(gitlab.labels)
    for old, new in gitlab.rename.items():
        expr = _copy(expr, new, old)
        dropped.add(old)
    for alloyci, theirs in ACTIONS.items():
        if "action" in gitlab.labels:
            expr = _set(expr, "action", theirs, "action", alloyci)
    for label, value in gitlab.constants.items():
        if value:
            expr = _set(expr, label, value)
    if "endpoint" in family.labels:
        if "method" in gitlab.labels:
            expr = _by_endpoint(expr, "method", METHODS)
        if "path" in gitlab.labels:
            expr = _by_endpoint(expr, "path", PATHS)
    if dropped:
        expr = f"sum without ({', '.join(sorted(dropped))}) ({expr})"
    return expr


def rules() -> list[tuple[str, str]]:
    """Return (record, expr) for every series of every family with a GitLab name."""
    out = []
    for family in CATALOG:
        gitlab = GITLAB.get(family.name)
        if gitlab is None:
            continue
        if family.kind is Kind.HISTOGRAM:
            pairs = [
                (f"{gitlab.name}{suffix}", f"{family.name}{suffix}")
                for suffix in ("_bucket", "_sum", "_count")
            ]
        else:
            pairs = [(gitlab.name, family.exposed_name)]
        out += [(record, expression(family, gitlab, series)) for record, series in pairs]
    # One rule per name: the two machine executors' families are joined (by `executor`).
    merged: dict[str, list[str]] = {}
    for record, expr in out:
        merged.setdefault(record, []).append(expr)
    return [(record, " or ".join(exprs)) for record, exprs in merged.items()]


def render() -> str:
    """Return the YAML of the rule file."""
    lines = [
        "# Generated from src/alloy_runner/telemetry/catalog/{instruments,naming}.py;",
        f"# do not edit by hand. Regenerate with: {COMMAND}",
        "#",
        '# GitLab Runner\'s names for the series of a runner that keeps metric_names = "alloyci",',
        "# for dashboards and alerts written for GitLab Runner. `runner` keeps the runner's name",
        "# (GitLab's holds the token's short form), `runner_name` copies it, no `system_id`.",
        '# A runner with metric_names = "gitlab" or "both" needs none of this.',
        "groups:",
        f"  - name: {GROUP}",
        "    rules:",
    ]
    for record, expr in rules():
        lines += [f"      - record: {record}", f"        expr: '{expr}'"]
    return "\n".join(lines) + "\n"


def main() -> None:
    """Write the rule file to standard output."""
    sys.stdout.write(render())


if __name__ == "__main__":
    main()
