"""What `submit` refuses before anything reaches the spool: jobs no runner could run safely."""

from __future__ import annotations

import re
from collections.abc import Iterable

from alloy_runner.build.job import MIN_MASKED_LENGTH, Variable, variable_problem
from alloy_runner.exceptions import PipelineError
from alloy_runner.pipeline.ci_yaml import PipelineSpec

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_pipeline(spec: PipelineSpec, where: str) -> None:
    """Raise PipelineError naming the job whose name or variable could not run or forge logs."""
    for job in spec.jobs:
        if _CONTROL.search(job.name):
            raise PipelineError(
                f"{where}: job {job.name!r}: a job name must not hold control characters"
            )
        for key, value in job.variables:
            if problem := variable_problem(key, value):
                raise PipelineError(f"{where}: job {job.name!r}: {problem}")


def check_variables(variables: Iterable[Variable]) -> None:
    """Raise PipelineError for a `--var`/`--masked-var` no runner could set or mask."""
    for variable in variables:
        if problem := variable_problem(variable.key, variable.value):
            raise PipelineError(problem)
        if variable.masked and len(variable.value) < MIN_MASKED_LENGTH:
            raise PipelineError(
                f"masked variable {variable.key}: a masked value needs at least "
                f"{MIN_MASKED_LENGTH} characters (as GitLab requires); a shorter one would "
                "mask those letters everywhere in the log"
            )
