"""One job's keywords, read into a JobSpec: what it runs, when, and with which values."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from alloy_runner.build.job import DEFAULT_TIMEOUT
from alloy_runner.exceptions import PipelineError
from alloy_runner.pipeline.images import read_image, read_services
from alloy_runner.pipeline.marked_yaml import LineMap
from alloy_runner.pipeline.needs import Need, read_needs
from alloy_runner.pipeline.report import Reporter, kind_of
from alloy_runner.pipeline.rules import Decision, Selector
from alloy_runner.pipeline.storage import read_artifacts, read_caches
from alloy_runner.pipeline.variables import VarTable, read_variables

JOB_WHENS = ("on_success", "on_failure", "always", "manual", "delayed", "never")
RETRY_WHENS = (
    *("always", "unknown_failure", "script_failure", "api_failure", "stuck_or_timeout_failure"),
    *("runner_system_failure", "runner_unsupported", "stale_schedule", "job_execution_timeout"),
    *("archived_failure", "unmet_prerequisites", "scheduler_failure", "data_integrity_failure"),
)
IMPLEMENTED = (
    *("stage", "script", "before_script", "after_script", "variables", "timeout", "when"),
    *("allow_failure", "artifacts", "cache", "dependencies", "needs", "extends", "rules"),
    *("only", "except", "parallel", "retry", "resource_group", "interruptible", "start_in"),
    *("inherit", "type", "image", "services"),
)
NO_EFFECT = (  # what a shell runner without GitLab around it has no use for
    *("tags", "environment", "coverage", "id_tokens", "identity"),
    *("pages", "dast_configuration", "manual_confirmation"),
)
REFUSED = {  # what would change the job if it were ignored
    "trigger": "child and multi-project pipelines",
    "release": "creating releases",
    "secrets": "secrets from external providers",
    "hooks": "runner hooks",
    "run": "CI steps",
}
MAX_START_IN = 7 * 24 * 3600


@dataclass
class Draft:
    """A job before its needs are resolved: the spec's values, and its raw needs."""

    values: dict[str, Any]
    needs: tuple[Need, ...] | None
    dependencies: tuple[str, ...] | None
    matrix: dict[str, str]
    base: str
    line: int
    dependencies_line: int


class JobReader:
    """Reads the keywords of jobs, for one pipeline (its selector and variable tables)."""

    def __init__(self, r: Reporter, selector: Selector, stages: tuple[str, ...]) -> None:
        self.r, self.selector, self.stages = r, selector, stages
        self.predefined = VarTable()  # the pipeline's predefined variables: lowest precedence
        self.globals = VarTable()  # global + workflow (what the job payload carries)
        self.run_vars: dict[str, str] = {}  # submit --var: highest precedence

    def check_keys(self, name: str, job: LineMap) -> None:
        where = f"job {name!r}: "
        for key in job:
            if key in NO_EFFECT:
                self.r.ignore(job.at(key), where, key)
            elif key in REFUSED:
                self.r.fail(job.at(key), f"{where}{key} ({REFUSED[key]}) cannot run here")
            elif key not in IMPLEMENTED:
                self.r.fail(job.at(key), f"{where}unknown key {key!r}")
        if "rules" in job and ("only" in job or "except" in job):
            self.r.fail(job.at("rules"), f"{where}rules cannot be used with only or except")

    def read(self, name: str, base: str, job: LineMap, extra: dict[str, str]) -> Draft | None:
        """Return the job `name` (an instance of `base`), or None when it is not in the run."""
        where = f"job {name!r}: "
        stage = job.get("stage", "test")
        if stage not in self.stages:
            known = ", ".join(self.stages)
            self.r.fail(job.at("stage"), f"{where}stage {stage!r} is not in stages ({known})")
        own = self._globals(job).put(read_variables(self.r, job, where)).put(extra)
        job_predefined = {"CI_JOB_NAME": name, "CI_JOB_STAGE": stage}
        table = self.predefined.put(job_predefined).put(own).put(self.run_vars)
        decision: Decision | None = Decision()
        if "rules" in job:
            decision = self.selector.rules(job["rules"], job.at("rules"), where, table)
        elif not self.selector.only_except(job, where, table.expanded()):
            decision = None
        when = self._when(job, where, decision)
        if decision is None or when == "never":
            return None
        if decision.variables.values:  # a rule's variables: the run's still win over them
            own = own.put(decision.variables)
            table = table.put(decision.variables).put(self.run_vars)
        needs_value, needs_line = decision.needs or (job.get("needs"), job.at("needs"))
        values = self._values(name, job, where, table)
        values.update(
            stage=stage,
            when=when,
            variables=tuple(own.values.items()),
            raw_variables=tuple(sorted(own.raw)),
            allow_failure=self._allow_failure(job, where, decision, when, values),
            start_in=self._start_in(job, where, decision, when),
        )
        return Draft(
            values=values,
            needs=read_needs(self.r, needs_value, needs_line, where),
            dependencies=self._dependencies(job, where),
            matrix=extra,
            base=base,
            line=job.line,
            dependencies_line=job.at("dependencies"),
        )

    @property
    def pipeline_vars(self) -> VarTable:
        return self.predefined.put(self.globals)

    def _globals(self, job: LineMap) -> VarTable:
        """The global variables the job inherits (`inherit:variables`)."""
        inherit = job.get("inherit")
        keep = inherit.get("variables", True) if isinstance(inherit, LineMap) else True
        if keep is True:
            return self.globals
        names = set(keep) if isinstance(keep, list) else set()
        kept = {k: v for k, v in self.globals.values.items() if k in names}
        return VarTable(kept, {k for k in self.globals.raw if k in names})

    def _when(self, job: LineMap, where: str, decision: Decision | None) -> str:
        when = job.get("when", "on_success")
        if when not in JOB_WHENS:
            self.r.fail(job.at("when"), f"{where}when must be one of {', '.join(JOB_WHENS)}")
        return str(decision.when if decision is not None and decision.when else when)

    def _allow_failure(
        self, job: LineMap, where: str, decision: Decision, when: str, values: dict[str, Any]
    ) -> bool:
        if decision.allow_failure is not None:
            return decision.allow_failure
        value = job.get("allow_failure")
        if isinstance(value, LineMap):
            codes = value.get("exit_codes")
            codes = [codes] if isinstance(codes, int) else codes
            if (
                set(value) != {"exit_codes"}
                or not isinstance(codes, list)
                or not all(isinstance(c, int) and not isinstance(c, bool) for c in codes)
            ):
                self.r.fail(
                    job.at("allow_failure"),
                    f"{where}allow_failure:exit_codes must be a number or a list of numbers",
                )
            values["allow_failure_exit_codes"] = tuple(codes)
            return False
        if value is None:  # a job-level manual job may fail; one a rule made manual may not
            return when == "manual" and job.get("when") == "manual" and not decision.when
        if not isinstance(value, bool):
            self.r.fail(job.at("allow_failure"), f"{where}allow_failure must be true or false")
        return value

    def _start_in(self, job: LineMap, where: str, decision: Decision, when: str) -> int:
        value, line = decision.start_in or (job.get("start_in"), job.at("start_in"))
        if when != "delayed":
            if value is not None:
                self.r.fail(line, f"{where}start_in needs when: delayed")
            return 0
        if value is None:
            self.r.fail(job.at("when"), f"{where}when: delayed needs start_in")
        seconds = self.r.duration(value, line, f"{where}start_in")
        if not 0 < seconds <= MAX_START_IN:
            self.r.fail(line, f"{where}start_in must be more than 0 and at most 1 week")
        return seconds

    def _values(self, name: str, job: LineMap, where: str, table: VarTable) -> dict[str, Any]:
        if "script" not in job:
            self.r.fail(job.line, f"job {name!r} has no script")
        script = self.script(job, "script", where)
        if not script:
            self.r.fail(job.at("script"), f"{where}script is empty")
        timeout = DEFAULT_TIMEOUT
        if job.get("timeout") is not None:
            timeout = self.r.duration(job["timeout"], job.at("timeout"), f"{where}timeout")
            if timeout <= 0:
                self.r.fail(job.at("timeout"), f"{where}timeout must be longer than 0 seconds")
        group = job.get("resource_group")
        if group is not None and not isinstance(group, str):
            self.r.fail(job.at("resource_group"), f"{where}resource_group must be a string")
        return {
            "name": name,
            "script": self.script(job, "before_script", where) + script,
            "after_script": self.script(job, "after_script", where),
            "timeout": timeout,
            "artifacts": read_artifacts(self.r, job, where, table),
            "cache": read_caches(self.r, job, where, table),
            "resource_group": table.expand(group) if group else None,
            "interruptible": self.r.flag(job, "interruptible", where),
            **self._retry(job, where),
            **self._images(job, where, table),
        }

    def _images(self, job: LineMap, where: str, table: VarTable) -> dict[str, Any]:
        """Read `image:` and `services:` (names expanded, as GitLab does) for the payload."""
        key = "image"
        try:
            image = read_image(job.get(key))
            key = "services"
            services = read_services(job.get(key))
        except PipelineError as exc:
            self.r.fail(job.at(key), f"{where}{exc}")
        if image is not None:
            image = dataclasses.replace(image, name=table.expand(image.name))
        services = tuple(dataclasses.replace(s, name=table.expand(s.name)) for s in services)
        return {"image": image, "services": services}

    def _retry(self, job: LineMap, where: str) -> dict[str, Any]:
        value, line = job.get("retry"), job.at("retry")
        if value is None:
            return {}
        spec = value if isinstance(value, LineMap) else {"max": value}
        for key in spec:
            if key not in ("max", "when", "exit_codes"):
                self.r.fail(line, f"{where}retry: unknown key {key!r}")
        most = spec.get("max", 0)
        if isinstance(most, bool) or not isinstance(most, int) or not 0 <= most <= 2:
            self.r.fail(line, f"{where}retry:max must be 0, 1 or 2")
        when = spec.get("when", ["always"])
        when = [when] if isinstance(when, str) else when
        if not isinstance(when, list) or not all(w in RETRY_WHENS for w in when):
            self.r.fail(line, f"{where}retry:when must name failures: {', '.join(RETRY_WHENS)}")
        codes = spec.get("exit_codes", [])
        codes = [codes] if isinstance(codes, int) else codes
        if not isinstance(codes, list) or not all(isinstance(c, int) for c in codes):
            self.r.fail(line, f"{where}retry:exit_codes must be numbers")
        return {"retry": most, "retry_when": tuple(when), "retry_exit_codes": tuple(codes)}

    def _dependencies(self, job: LineMap, where: str) -> tuple[str, ...] | None:
        value = job.get("dependencies")
        if value is None:  # absent, or a bare `dependencies:` (GitLab reads both the same)
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.r.fail(job.at("dependencies"), f"{where}dependencies must be a list of job names")
        return tuple(value)

    def script(self, job: LineMap, key: str, where: str) -> tuple[str, ...]:
        value = job.get(key)
        if value is None:
            return ()
        if isinstance(value, str):
            return (value,)
        if not isinstance(value, list):
            self.r.fail(job.at(key), f"{where}{key} must be a string or a list of strings")
        return tuple(self._lines(value, job, key, where, 0))

    def _lines(self, value: list[Any], job: LineMap, key: str, where: str, depth: int) -> list[str]:
        lines: list[str] = []
        for item in value:  # nested lists (anchors, !reference) flatten, ten levels at most
            if isinstance(item, list) and depth < 10:
                lines.extend(self._lines(item, job, key, where, depth + 1))
            elif isinstance(item, str):
                lines.append(item)
            else:
                hint = " (quote a line that contains ': ')" if isinstance(item, dict) else ""
                at = item.line if isinstance(item, LineMap) else job.at(key)
                self.r.fail(at, f"{where}{key} holds {kind_of(item)}, not a string{hint}")
        return lines
