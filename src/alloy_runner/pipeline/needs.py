"""`needs` and `dependencies` between the jobs a pipeline made, checked as GitLab checks them.

A need names a job (every instance of a `parallel` one, or those of `parallel:matrix`
it selects); `optional: true` drops a need on a job the pipeline does not have; a need
on a job that is not there, a later stage, or a loop is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from graphlib import CycleError, TopologicalSorter
from typing import Any

from alloy_runner.pipeline.marked_yaml import LineMap
from alloy_runner.pipeline.parallel import matrix
from alloy_runner.pipeline.report import Reporter

MATRIX_EXPRESSION = re.compile(r"\$\[\[\s*matrix\.([A-Za-z_][A-Za-z0-9_]*)\s*\]\]")
NEED_KEYS = ("job", "artifacts", "optional", "parallel")
REFUSED_NEED_KEYS = ("pipeline", "project")


@dataclass(frozen=True)
class Need:
    job: str
    artifacts: bool = True
    optional: bool = False
    matrix: tuple[tuple[tuple[str, str], ...], ...] = ()  # instances selected, empty: all
    line: int = 0


def read_needs(r: Reporter, value: Any, line: int, where: str) -> tuple[Need, ...] | None:
    """Parse `needs:` (None when the job has none: it waits for the earlier stages)."""
    if value is None:
        return None
    if not isinstance(value, list):
        r.fail(line, f"{where}needs must be a list")
    needs = []
    for item in value:
        if isinstance(item, str):
            needs.append(Need(item, line=line))
            continue
        if not isinstance(item, LineMap):
            r.fail(line, f"{where}needs must name jobs, not {item!r}")
        for key in item:
            if key in REFUSED_NEED_KEYS:
                r.fail(item.at(key), f"{where}needs:{key}: other pipelines cannot be read here")
            if key not in NEED_KEYS:
                r.fail(item.at(key), f"{where}needs: unknown key {key!r}")
        name = item.get("job")
        if not isinstance(name, str):
            r.fail(item.line, f"{where}needs:job must name a job")
        combos: list[dict[str, str]] = []
        if "parallel" in item:
            spec = item["parallel"]
            if not isinstance(spec, LineMap) or set(spec) != {"matrix"}:
                r.fail(item.at("parallel"), f"{where}needs:parallel must hold only matrix")
            combos = matrix(r, spec["matrix"], spec.at("matrix"), f"{where}needs:parallel")
        flags = [r.flag(item, key, f"{where}needs:") for key in ("optional",)]
        artifacts = item.get("artifacts", True)
        if not isinstance(artifacts, bool):
            r.fail(item.at("artifacts"), f"{where}needs:artifacts must be true or false")
        selected = tuple(tuple(c.items()) for c in combos)
        needs.append(Need(name, artifacts, flags[0], selected, item.line))
    return tuple(needs)


@dataclass(frozen=True)
class Node:
    """What the graph checks need of one job."""

    name: str
    base: str  # the name as written, before `parallel` made instances of it
    stage_rank: int
    stage: str
    matrix: dict[str, str]
    needs: tuple[Need, ...] | None
    dependencies: tuple[str, ...] | None
    line: int
    dependencies_line: int


def resolve(r: Reporter, nodes: list[Node], where_of: dict[str, int]) -> dict[str, Any]:
    """Return, per job, (needed names, names whose artifacts it downloads, dependencies)."""
    by_base: dict[str, list[Node]] = {}
    by_name = {n.name: n for n in nodes}
    for node in nodes:
        by_base.setdefault(node.base, []).append(node)
    out: dict[str, Any] = {}
    for node in nodes:
        what = f"job {node.name!r}: "
        needed: list[str] = []
        artifacts: list[str] = []
        for need in node.needs or ():
            targets = _targets(need, by_base, by_name, node)
            if not targets:
                if need.optional:
                    continue
                if need.job in where_of and not need.job.startswith("."):
                    why = f"job {need.job!r} is not in this pipeline (its rules left it out"
                    r.fail(need.line, f"{what}needs: {why}; optional: true allows that)")
                r.fail(need.line, f"{what}needs: unknown job {need.job!r}")
            for target in targets:
                if target.stage_rank > node.stage_rank:
                    r.fail(
                        need.line,
                        f"{what}needs: job {target.name!r} is in a later stage ({target.stage!r})",
                    )
                needed.append(target.name)
                if need.artifacts:
                    artifacts.append(target.name)
        deps = _dependencies(r, node, by_base, by_name, needed)
        needs = tuple(dict.fromkeys(needed)) if node.needs is not None else None
        deps_out = (
            tuple(deps)
            if deps is not None
            else (tuple(dict.fromkeys(artifacts)) if node.needs is not None else None)
        )
        out[node.name] = (needs, deps_out)
    _no_loops(r, nodes, out)
    return out


def _dependencies(
    r: Reporter,
    node: Node,
    by_base: dict[str, list[Node]],
    by_name: dict[str, Node],
    needed: list[str],
) -> list[str] | None:
    if node.dependencies is None:
        return None
    what, line = f"job {node.name!r}: dependencies: ", node.dependencies_line
    deps = []
    for dep in node.dependencies:
        targets = by_base.get(dep) or ([by_name[dep]] if dep in by_name else [])
        if not targets:
            r.fail(line, f"{what}unknown job {dep!r}")
        for target in targets:
            if target.stage_rank > node.stage_rank:
                r.fail(line, f"{what}job {target.name!r} is in a later stage ({target.stage!r})")
            if node.needs is None and target.stage_rank == node.stage_rank:
                r.fail(line, f"{what}job {target.name!r} is in the same stage")
            if node.needs is not None and target.name not in needed:
                r.fail(line, f"{what}job {target.name!r} must also be in needs")
            deps.append(target.name)
    return deps


def _targets(
    need: Need, by_base: dict[str, list[Node]], by_name: dict[str, Node], node: Node
) -> list[Node]:
    if need.job in by_name and need.job not in by_base:
        return [by_name[need.job]]
    found = by_base.get(need.job, [])
    if need.matrix:  # `$[[ matrix.NAME ]]` is the needing job's own matrix value
        wanted = [
            {k: MATRIX_EXPRESSION.sub(lambda m: node.matrix.get(m[1], m[0]), v) for k, v in c}
            for c in need.matrix
        ]
        found = [n for n in found if any(w.items() <= n.matrix.items() for w in wanted)]
    return found


def _no_loops(r: Reporter, nodes: list[Node], out: dict[str, Any]) -> None:
    try:
        TopologicalSorter({n: out[n][0] or () for n in out}).prepare()
    except CycleError as exc:
        cycle = [str(n) for n in exc.args[1]]
        line = next(n.line for n in nodes if n.name == cycle[0])
        first = next(
            (need.line for n in nodes if n.name == cycle[0] for need in n.needs or ()), line
        )
        r.fail(first, f"job {cycle[0]!r}: needs loop: {' -> '.join(cycle)}")
