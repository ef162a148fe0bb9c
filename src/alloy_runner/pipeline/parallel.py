"""`parallel: N` and `parallel: matrix`: one job written, several jobs run, named as GitLab
names them (`test 1/3`, `deploy: [aws, app1]`) and told their place by CI_NODE_INDEX/TOTAL."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

from alloy_runner.pipeline.marked_yaml import LineMap
from alloy_runner.pipeline.report import Reporter

MAX_JOBS = 200  # GitLab's limit for one job's `parallel`


def instances(r: Reporter, name: str, job: LineMap) -> list[tuple[str, dict[str, str]]]:
    """Return the jobs `job` makes: (name, the variables of that instance)."""
    value = job.get("parallel")
    where, line = f"job {name!r}: parallel", job.at("parallel")
    if value is None:
        return [(name, {})]
    if isinstance(value, int) and not isinstance(value, bool):
        if not 1 <= value <= MAX_JOBS:
            r.fail(line, f"{where} must be between 1 and {MAX_JOBS}, not {value}")
        total = str(value)
        return [
            (f"{name} {i}/{value}", {"CI_NODE_INDEX": str(i), "CI_NODE_TOTAL": total})
            for i in range(1, value + 1)
        ]
    if not isinstance(value, LineMap) or set(value) != {"matrix"}:
        r.fail(line, f"{where} must be a number or a mapping with only 'matrix'")
    combos = matrix(r, value["matrix"], value.at("matrix"), where)
    total = str(len(combos))
    return [
        (
            f"{name}: [{', '.join(combo.values())}]",
            {**combo, "CI_NODE_INDEX": str(i), "CI_NODE_TOTAL": total},
        )
        for i, combo in enumerate(combos, 1)
    ]


def matrix(r: Reporter, value: Any, line: int, where: str) -> list[dict[str, str]]:
    """Expand a matrix (a list of mappings of a value or a list of values) in GitLab's order."""
    if not isinstance(value, list) or not value:
        r.fail(line, f"{where}:matrix must be a non-empty list of mappings")
    combos: list[dict[str, str]] = []
    for entry in value:
        if not isinstance(entry, Mapping) or not entry:
            r.fail(line, f"{where}:matrix entries must be mappings of variables to values")
        axes: list[list[tuple[str, str]]] = []
        for key, values in entry.items():
            at = entry.at(key) if isinstance(entry, LineMap) else line
            listed = values if isinstance(values, list) else [values]
            if not isinstance(key, str) or not listed or not all(_scalar(v) for v in listed):
                r.fail(at, f"{where}:matrix: {key!r} must map to a value or a list of values")
            axes.append([(key, str(v)) for v in listed])
        size = len(combos)
        for point in itertools.product(*axes):
            combos.append(dict(point))
            if len(combos) > MAX_JOBS:
                r.fail(line, f"{where}:matrix makes more than {MAX_JOBS} jobs (GitLab's limit)")
        if len(combos) == size:
            r.fail(line, f"{where}:matrix entry makes no job")
    return combos


def _scalar(value: Any) -> bool:
    return isinstance(value, str | int | float) and not isinstance(value, bool)
