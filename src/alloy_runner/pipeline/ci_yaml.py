"""The `.alloy-ci.yml` reader: GitLab CI YAML, read into the jobs GitLab would create.

What changes nothing here (tags, environment, ...) is reported in `PipelineSpec.warnings`,
once per key; what cannot run raises PipelineError as one `FILE:LINE: message` line.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from alloy_runner.exceptions import PipelineError
from alloy_runner.pipeline.compose import compose
from alloy_runner.pipeline.durations import parse_duration
from alloy_runner.pipeline.jobs import JobReader
from alloy_runner.pipeline.marked_yaml import LineMap, merge
from alloy_runner.pipeline.needs import Node, resolve
from alloy_runner.pipeline.parallel import instances
from alloy_runner.pipeline.repo import Repo
from alloy_runner.pipeline.report import Reporter, kind_of
from alloy_runner.pipeline.rules import Selector
from alloy_runner.pipeline.spec import JobSpec, PipelineSpec, job_steps
from alloy_runner.pipeline.variables import VarTable, read_variables

__all__ = [
    "JobSpec",
    "PipelineError",
    "PipelineSpec",
    "job_steps",
    "load_pipeline",
    "parse_duration",
    "parse_pipeline",
]

DEFAULT_STAGES = (".pre", "build", "test", "deploy", ".post")
DEFAULT_KEYS = (
    *("before_script", "after_script", "cache", "artifacts", "timeout", "retry"),
    *("interruptible", "image", "services", "tags", "id_tokens", "hooks", "identity"),
)
LEGACY_GLOBALS = ("before_script", "after_script", "cache", "image", "services")
GLOBAL_KEYS = ("stages", "types", "default", "variables", "workflow", "include", "spec")
RESERVED = (*GLOBAL_KEYS, *LEGACY_GLOBALS)
WORKFLOW_KEYS = ("rules", "name", "auto_cancel")


def load_pipeline(
    path: Path, repo: Repo | None = None, run_vars: Mapping[str, str] | None = None
) -> PipelineSpec:
    """Read the pipeline in the file at `path` for `repo` (its own directory by default)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PipelineError(f"{path}: cannot read it ({exc})") from None
    repo = repo or Repo(root=path.resolve().parent)
    return parse_pipeline(text, str(path), repo, run_vars)


def parse_pipeline(
    text: str,
    source: str = ".alloy-ci.yml",
    repo: Repo | None = None,
    run_vars: Mapping[str, str] | None = None,
) -> PipelineSpec:
    """Read GitLab CI YAML into a plan; `source` names the file in warnings and errors."""
    repo = repo or Repo(root=Path.cwd())
    return _Reader(source, repo, dict(run_vars or {})).read(text)


class _Reader(Reporter):
    """One reading of one pipeline: its repository, its run's variables, its warnings."""

    def __init__(self, source: str, repo: Repo, run_vars: dict[str, str]) -> None:
        super().__init__(source)
        self.repo = repo
        self.selector = Selector(self, repo)
        self.run_vars = run_vars
        self.auto_cancel = "conservative"
        self.left_out: list[str] = []  # jobs that rules, only/except or `when: never` left out

    def read(self, text: str) -> PipelineSpec:
        predefined = VarTable(self.repo.predefined())
        top = compose(self, text, self.repo, predefined.put(self.run_vars))
        stages = self._stages(top)
        jobs = JobReader(self, self.selector, stages)
        jobs.run_vars = self.run_vars
        jobs.predefined = predefined
        jobs.globals = read_variables(self, top, "")
        filtered, name = self._workflow(top, jobs)
        pipeline_vars = tuple(jobs.predefined.values.items())
        if filtered:
            return PipelineSpec(stages, (), tuple(self.warnings), name, filtered, pipeline_vars)
        defaults = self._defaults(top)
        for key in top:
            if not isinstance(key, str):
                self.fail(top.at(key), f"job name {key!r} must be a string (quote it)")
        names = [k for k in top if k not in RESERVED and not k.startswith(".")]
        if not names:
            also = f" (it includes {', '.join(self.included)})" if self.included else ""
            self.fail(
                1, f"no jobs: a pipeline needs a job whose name does not start with '.'{also}"
            )
        drafts = []
        for base in names:
            job = self._resolve(top, base, ())
            job = self._inherit(base, job, defaults)
            jobs.check_keys(base, job)
            if "type" in job and "stage" not in job:
                job.put("stage", job["type"], job.at("type"))
            for instance, extra in instances(self, base, job):
                draft = jobs.read(instance, base, job, extra)
                if draft is not None:
                    drafts.append(draft)
                else:
                    self.left_out.append(instance)
        specs = self._link(drafts, stages, names, top)
        specs.sort(key=lambda s: stages.index(s.stage))
        return PipelineSpec(
            stages,
            tuple(specs),
            tuple(self.warnings),
            name,
            "",
            pipeline_vars,
            self.auto_cancel,
            tuple(self.left_out),
        )

    def _stages(self, top: LineMap) -> tuple[str, ...]:
        key = "stages" if "stages" in top or "types" not in top else "types"
        value = top.get(key)
        if value is None:
            return DEFAULT_STAGES
        if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
            self.fail(top.at(key), f"{key} must be a list of stage names")
        named = [s for s in value if s not in (".pre", ".post")]
        for stage in named:
            if named.count(stage) > 1:
                self.fail(top.at(key), f"{key}: stage {stage!r} is listed twice")
        return (".pre", *named, ".post")

    def _defaults(self, top: LineMap) -> LineMap:
        if "spec" in top:
            self.fail(top.at("spec"), "spec (inputs for included files) is not supported here")
        defaults = LineMap(1)
        for key in LEGACY_GLOBALS:
            if key in top:
                defaults.put(key, top[key], top.at(key))
        default = top.get("default", LineMap(1))
        if not isinstance(default, LineMap):
            self.fail(top.at("default"), "default must be a mapping")
        for key, value in default.items():
            if key not in DEFAULT_KEYS:
                self.fail(default.at(key), f"default: unknown key {key!r}")
            defaults.put(key, value, default.at(key))
        return defaults

    def _workflow(self, top: LineMap, jobs: JobReader) -> tuple[str, str]:
        """Apply `workflow`; return (why no pipeline is created or "", the pipeline's name)."""
        value = top.get("workflow")
        if value is None:
            return "", ""
        if not isinstance(value, LineMap):
            self.fail(top.at("workflow"), "workflow must be a mapping")
        for key in value:
            if key not in WORKFLOW_KEYS:
                self.fail(value.at(key), f"workflow: unknown key {key!r}")
        if "auto_cancel" in value:
            self.auto_cancel = self._auto_cancel(value)
        if "rules" in value:
            table = jobs.pipeline_vars.put(self.run_vars)
            decision = self.selector.rules(value["rules"], value.at("rules"), "workflow:", table)
            if decision is not None and decision.when not in (None, "always"):
                self.fail(value.at("rules"), "workflow:rules:when must be always or never")
            if decision is None:
                return "workflow:rules created no pipeline for this ref and source", ""
            jobs.globals = jobs.globals.put(decision.variables)
        name = value.get("name", "")
        if not isinstance(name, str):
            self.fail(value.at("name"), "workflow:name must be a string")
        name = jobs.pipeline_vars.put(self.run_vars).expand(name)
        if name:
            jobs.predefined = jobs.predefined.put({"CI_PIPELINE_NAME": name})
        return "", name

    def _auto_cancel(self, workflow: LineMap) -> str:
        value = self.mapping(workflow, "auto_cancel", "workflow:")
        for key in value:
            if key not in ("on_new_commit", "on_job_failure"):
                self.fail(value.at(key), f"workflow:auto_cancel: unknown key {key!r}")
        if value.get("on_job_failure", "none") != "none":
            self.fail(
                value.at("on_job_failure"),
                "workflow:auto_cancel:on_job_failure: only none is supported here",
            )
        modes = ("conservative", "interruptible", "none")
        return self.word(value, "on_new_commit", "workflow:auto_cancel:", modes)

    def _inherit(self, name: str, job: LineMap, defaults: LineMap) -> LineMap:
        """Apply `default:` (whole keys: a job's own key wins), as `inherit` allows."""
        value = job.get("inherit", LineMap(job.line))
        if not isinstance(value, LineMap) or not set(value) <= {"default", "variables"}:
            self.fail(job.at("inherit"), f"job {name!r}: inherit takes default and variables")
        keep = value.get("default", True)
        for what in (keep, value.get("variables", True)):
            if not isinstance(what, bool | list):
                self.fail(value.line, f"job {name!r}: inherit values must be true, false or a list")
        out = LineMap(job.line)
        for key in job:
            out.put(key, job[key], job.at(key))
        for key, item in defaults.items():
            if key not in out and (keep is True or (isinstance(keep, list) and key in keep)):
                out.put(key, item, defaults.at(key))
        return out

    def _resolve(self, top: LineMap, name: str, chain: tuple[str, ...]) -> LineMap:
        """Return the job `name` with the templates it `extends` merged under it."""
        body = top[name]
        if not isinstance(body, LineMap):
            self.fail(top.at(name), f"job {name!r} must be a mapping, not {kind_of(body)}")
        parents = body.get("extends", [])
        parents = [parents] if isinstance(parents, str) else parents
        if not isinstance(parents, list) or not all(isinstance(p, str) for p in parents):
            self.fail(body.at("extends"), f"job {name!r}: extends must name a job or list jobs")
        if len(chain) > 10:
            self.fail(body.at("extends"), f"job {name!r}: extends nests more than 11 levels")
        merged = LineMap(top.at(name))
        for parent in parents:
            if parent in (*chain, name):
                loop = " -> ".join((*chain, name, parent))
                self.fail(body.at("extends"), f"job {name!r}: extends loops: {loop}")
            if parent not in top or parent in RESERVED:
                self.fail(body.at("extends"), f"job {name!r}: extends unknown job {parent!r}")
            merged = merge(merged, self._resolve(top, parent, (*chain, name)))
        own = LineMap(top.at(name))
        for key, value in body.items():
            if key != "extends":
                own.put(key, value, body.at(key))
        return merge(merged, own)

    def _link(
        self, drafts: list[Any], stages: tuple[str, ...], names: list[str], top: LineMap
    ) -> list[JobSpec]:
        nodes = [
            Node(
                name=d.values["name"],
                base=d.base,
                stage_rank=stages.index(d.values["stage"]),
                stage=d.values["stage"],
                matrix=d.matrix,
                needs=d.needs,
                dependencies=d.dependencies,
                line=d.line,
                dependencies_line=d.dependencies_line,
            )
            for d in drafts
        ]
        links = resolve(self, nodes, {n: top.at(n) for n in names})
        specs = []
        for draft in drafts:
            needs, dependencies = links[draft.values["name"]]
            specs.append(JobSpec(**draft.values, needs=needs, dependencies=dependencies))
        return specs
