"""The order of a pipeline's jobs: `needs` and `dependencies` name earlier jobs, without a cycle."""

from __future__ import annotations

from collections.abc import Callable
from graphlib import CycleError, TopologicalSorter
from typing import NoReturn

from alloy_runner.pipeline.marked_yaml import LineMap
from alloy_runner.pipeline.spec import JobSpec


def check_order(
    parsed: dict[str, tuple[JobSpec, LineMap]],
    stages: tuple[str, ...],
    fail: Callable[[int, str], NoReturn],
) -> None:
    """Fail on needs or dependencies that name unknown jobs, later jobs, or a cycle."""
    rank = {name: stages.index(spec.stage) for name, (spec, _) in parsed.items()}
    for name, (spec, job) in parsed.items():
        for key, others in (("needs", spec.needs), ("dependencies", spec.dependencies)):
            for other in others or ():
                line, what = job.at(key), f"job {name!r}: {key}"
                if other not in rank:
                    fail(line, f"{what}: unknown job {other!r}")
                if rank[other] > rank[name]:
                    stage = parsed[other][0].stage
                    fail(line, f"{what}: job {other!r} is in a later stage ({stage!r})")
                if key == "dependencies" and spec.needs is not None and other not in spec.needs:
                    fail(line, f"{what}: job {other!r} must also be in needs")
                if key == "dependencies" and spec.needs is None and rank[other] == rank[name]:
                    fail(line, f"{what}: job {other!r} is in the same stage")
    try:
        TopologicalSorter({n: s.needs or () for n, (s, _) in parsed.items()}).prepare()
    except CycleError as exc:
        cycle = [str(n) for n in exc.args[1]]
        job = parsed[cycle[0]][1]
        fail(job.at("needs"), f"job {cycle[0]!r}: needs loop: {' -> '.join(cycle)}")
