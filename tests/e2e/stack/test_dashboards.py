"""The Grafana dashboards are generated, one per naming, and travel: variables, 0, no limit."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from alloy_runner.telemetry.catalog.dashboards import COMMAND, render
from alloy_runner.telemetry.catalog.instruments import CATALOG
from alloy_runner.telemetry.catalog.naming import GITLAB

ROOT = Path(__file__).resolve().parents[3]
FILES = {
    False: ROOT / "docs/grafana/alloy-runner.json",
    True: ROOT / "docs/grafana/alloy-runner-gitlab.json",
}
NAME = re.compile(r"\b((?:ci|gitlab_runner|process|python)_[a-z_]+?)(?:_bucket)?\b(?=[{\[)])")


def exposed(gitlab: bool) -> set[str]:
    names = set()
    for family in CATALOG:
        mapped = GITLAB.get(family.name)
        names.add(mapped.name if gitlab and mapped else family.exposed_name)
    return names


@pytest.mark.parametrize("gitlab", [False, True], ids=["alloyci", "gitlab"])
def test_the_committed_dashboard_is_the_generated_one(gitlab: bool) -> None:
    assert FILES[gitlab].read_text(encoding="utf-8") == render(gitlab), (
        f"{FILES[gitlab].name} is out of date; regenerate with: .venv/bin/{COMMAND}"
    )


@pytest.mark.parametrize("gitlab", [False, True], ids=["alloyci", "gitlab"])
def test_every_query_names_only_families_of_its_naming(gitlab: bool) -> None:
    board = json.loads(FILES[gitlab].read_text())
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    exprs += [v["query"] for v in board["templating"]["list"] if v["type"] == "query"]
    used = {m.group(1) for e in exprs for m in NAME.finditer(e)}
    assert used, exprs
    assert used <= exposed(gitlab), used - exposed(gitlab)
    assert {"job", "runner", "datasource"} == {v["name"] for v in board["templating"]["list"]}
    assert all('job=~"$job"' in e for e in exprs if "label_values" not in e), exprs


@pytest.mark.parametrize("gitlab", [False, True], ids=["alloyci", "gitlab"])
def test_idle_shows_0_a_limit_of_0_reads_no_limit_and_durations_link_traces(gitlab: bool) -> None:
    panels = {p["title"]: p for p in json.loads(FILES[gitlab].read_text())["panels"]}
    for title, panel in panels.items():
        if panel.get("targets") and panel["type"] != "table":
            assert panel["fieldConfig"]["defaults"]["noValue"] == "0", title
    (mapping,) = panels["Limit"]["fieldConfig"]["defaults"]["mappings"]
    assert mapping == {"type": "value", "options": {"0": {"text": "no limit"}}}
    assert all(t["exemplar"] for t in panels["Job duration"]["targets"])
    running = panels["Running builds"]["targets"][0]["expr"]
    assert running.endswith("or vector(0)")
