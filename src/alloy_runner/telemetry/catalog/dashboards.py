"""Generate the Grafana dashboards, one per naming, from one definition (grafana-foundation-sdk).

Regenerate with `python -m alloy_runner.telemetry.catalog.dashboards` (a dev
dependency; the runner itself never imports this module). It writes
docs/grafana/alloy-runner.json (the `ci_*` names) and
docs/grafana/alloy-runner-gitlab.json (GitLab Runner's names); a test fails
while the committed files differ from what this module renders.

Every query takes its names from the catalog (`CATALOG`, `GITLAB`), so a
dashboard can only name what the runner exposes. Both dashboards take their
Prometheus data source and scrape job from variables, so they import anywhere.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import text
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as model

from alloy_runner.telemetry.catalog import instruments as i
from alloy_runner.telemetry.catalog.dashboard_kit import DATASOURCE, Names
from alloy_runner.telemetry.catalog.dashboard_rows import NEXT, ROWS

COMMAND = "python -m alloy_runner.telemetry.catalog.dashboards"


def variables(n: Names) -> list[Builder[model.VariableModel]]:
    info = n(i.VERSION_INFO)
    builds = n(i.BUILDS)
    return [
        dash.DatasourceVariable("datasource").label("Prometheus").type("prometheus"),
        dash.QueryVariable("job")
        .label("job")
        .datasource(DATASOURCE)
        .query(f"label_values({info}, job)")
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .include_all(True)
        .all_value(".*")
        .multi(True),
        dash.QueryVariable("runner")
        .label("runner")
        .datasource(DATASOURCE)
        .query(f'label_values({builds}{{job=~"$job"}}, {n.runner})')
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .include_all(True)
        .all_value(".*")
        .multi(True)
        .sort(model.VariableSort.ALPHABETICAL_ASC),
    ]


def build(gitlab: bool) -> dict[str, object]:
    """Return one dashboard's JSON model, for the GitLab naming or the `ci_*` one."""
    n = Names(gitlab)
    suffix = " (GitLab Runner names)" if gitlab else ""
    board = (
        dash.Dashboard(f"alloy-runner{suffix}")
        .uid("alloy-runner-gitlab" if gitlab else "alloy-runner")
        .description("Jobs, builds, machines, coordinator API, process and Python runtime.")
        .tags(["alloy-runner", "ci", "gitlab-runner" if gitlab else "alloyci"])
        .refresh("10s")
        .time("now-30m", "now")
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .timezone("browser")
    )
    for variable in variables(n):
        board = board.with_variable(variable)
    for title, panels in ROWS:
        board = board.with_row(dash.Row(title))
        for panel in panels(n):
            board = board.with_panel(panel)
    board = board.with_row(dash.Row("Traces and profiles")).with_panel(
        text.Panel().title("Where to look next").content(NEXT).height(5).span(24)
    )
    rendered: dict[str, object] = _prune(  # type: ignore[assignment]
        json.loads(json.dumps(board.build(), cls=JSONEncoder))
    )
    return rendered


def _prune(value: object) -> object:
    """Drop the nulls the SDK writes for options left unset (Grafana then uses its defaults)."""
    if isinstance(value, dict):
        return {k: _prune(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_prune(v) for v in value]
    return value


def render(gitlab: bool) -> str:
    """Return the committed text of one dashboard."""
    return json.dumps(build(gitlab), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main() -> None:
    """Write both dashboards under docs/grafana/ (or the directory given)."""
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/grafana")
    (folder / "alloy-runner.json").write_text(render(False), encoding="utf-8")
    (folder / "alloy-runner-gitlab.json").write_text(render(True), encoding="utf-8")


if __name__ == "__main__":
    main()
