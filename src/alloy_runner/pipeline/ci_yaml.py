"""The `.alloy-ci.yml` reader: the GitLab CI YAML that runners see most, read into a plan.

What a runner cannot do (rules, include, ...) is reported in `PipelineSpec.warnings`,
one line per key; what cannot run at all raises PipelineError as one `FILE:LINE: message` line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NoReturn

from alloy_runner.build.job import DEFAULT_TIMEOUT, Artifact, ArtifactWhen, Cache, CachePolicy
from alloy_runner.exceptions import PipelineError
from alloy_runner.pipeline.durations import parse_duration
from alloy_runner.pipeline.images import read_image, read_services
from alloy_runner.pipeline.marked_yaml import LineMap, load_yaml, merge
from alloy_runner.pipeline.order import check_order
from alloy_runner.pipeline.spec import JobSpec, PipelineSpec, job_steps

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
DEFAULT_STAGE = "test"
WHENS = tuple(when.value for when in ArtifactWhen)  # also the job-level whens that run
KEPT_WHENS = ("manual", "delayed")  # reported, and left in JobSpec.when for the caller
CACHE_POLICIES = tuple(policy.value for policy in CachePolicy)
IMAGES = ("image", "services")  # carried into the job payload for the docker executors
DEFAULT_KEYS = ("before_script", "after_script", "cache", "artifacts", "timeout", *IMAGES)
LEGACY_GLOBALS = ("before_script", "after_script", "cache", *IMAGES)  # GitLab's top-level defaults
UNSUPPORTED_GLOBALS = ("workflow", "include", "types")
RESERVED = ("stages", "default", "variables", *LEGACY_GLOBALS, *UNSUPPORTED_GLOBALS)
JOB_KEYS = (
    *("stage", "script", "before_script", "after_script", "variables", "timeout"),
    *("allow_failure", "when", "artifacts", "cache", "dependencies", "needs", "extends"),
    *IMAGES,
)
ARTIFACT_KEYS = ("paths", "exclude", "name", "when", "expire_in", "untracked")
CACHE_KEYS = ("key", "paths", "policy", "untracked", "when")
VARIABLE_KEYS = ("value", "description", "options", "expand")  # description/options: UI only


def load_pipeline(path: Path) -> PipelineSpec:
    """Read the pipeline in the file at `path`."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PipelineError(f"{path}: cannot read it ({exc})") from None
    return parse_pipeline(text, str(path))


def parse_pipeline(text: str, source: str = ".alloy-ci.yml") -> PipelineSpec:
    """Read GitLab CI YAML into a plan; `source` names the file in warnings and errors."""
    return _Reader(source).read(text)


def _kind(value: Any) -> str:
    kinds = {dict: "a mapping", list: "a list"}
    return next((kind for t, kind in kinds.items() if isinstance(value, t)), repr(value))


class _Reader:
    """One reading of one file: its name, for messages, and the warnings so far."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.warnings: list[str] = []
        self.stages: tuple[str, ...] = DEFAULT_STAGES
        self.names: list[str] = []
        self.variables: dict[str, str] = {}  # the global ones

    def fail(self, line: int, message: str) -> NoReturn:
        raise PipelineError(f"{self.source}:{line}: {message}")

    def ignore(self, line: int, where: str, key: str, note: str = "") -> None:
        self.warnings.append(
            f"{self.source}:{line}: {where}key {key!r} is not supported and was ignored{note}"
        )

    def read(self, text: str) -> PipelineSpec:
        top = self._load(text)
        self.stages = stages = self._stages(top)
        defaults = LineMap(1)
        for key in LEGACY_GLOBALS:
            if key in top:
                defaults.put(key, top[key], top.at(key))
        default = top.get("default", LineMap(1))
        if not isinstance(default, LineMap):
            self.fail(top.at("default"), "default must be a mapping")
        for key, value in default.items():
            if key in DEFAULT_KEYS:
                defaults.put(key, value, default.at(key))
            else:
                self.ignore(default.at(key), "default: ", key)
        for key in UNSUPPORTED_GLOBALS:
            if key in top:
                self.ignore(top.at(key), "", key)
        self.variables = self._variables(top, "")
        for key in top:
            if not isinstance(key, str):
                self.fail(top.at(key), f"job name {key!r} must be a string (quote it)")
        self.names = names = [k for k in top if k not in RESERVED and not k.startswith(".")]
        if not names:
            self.fail(1, "no jobs: a pipeline needs a job whose name does not start with '.'")
        parsed: dict[str, tuple[JobSpec, LineMap]] = {}
        for name in names:
            job = self._resolve(top, name, ())
            for key, value in defaults.items():  # a job's own key replaces the default whole
                if key not in job:
                    job.put(key, value, defaults.at(key))
            parsed[name] = (self._job(name, job), job)
        check_order(parsed, stages, self.fail)
        specs = sorted((spec for spec, _ in parsed.values()), key=lambda s: stages.index(s.stage))
        return PipelineSpec(stages, tuple(specs), tuple(self.warnings))

    def _load(self, text: str) -> LineMap:
        data = load_yaml(text, self.source)
        if data is None:
            self.fail(1, "no jobs: the file is empty")
        if not isinstance(data, LineMap):
            self.fail(1, "expected a mapping of job names to jobs at the top level")
        return data

    def _stages(self, top: LineMap) -> tuple[str, ...]:
        value = top.get("stages")
        if value is None:
            return DEFAULT_STAGES
        if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
            self.fail(top.at("stages"), "stages must be a list of stage names")
        named = [s for s in value if s not in (".pre", ".post")]
        for stage in named:
            if named.count(stage) > 1:
                self.fail(top.at("stages"), f"stages: stage {stage!r} is listed twice")
        return (".pre", *named, ".post")

    def _resolve(self, top: LineMap, name: str, chain: tuple[str, ...]) -> LineMap:
        """Return the job `name` with the templates it `extends` merged under it."""
        body = top[name]
        if not isinstance(body, LineMap):
            self.fail(top.at(name), f"job {name!r} must be a mapping, not {_kind(body)}")
        parents = body.get("extends", [])
        parents = [parents] if isinstance(parents, str) else parents
        if not isinstance(parents, list) or not all(isinstance(p, str) for p in parents):
            self.fail(body.at("extends"), f"job {name!r}: extends must name a job or list jobs")
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

    def _job(self, name: str, job: LineMap) -> JobSpec:
        where = f"job {name!r}: "
        for key in job:
            if key not in JOB_KEYS:
                self.ignore(job.at(key), where, key)
        stage = job.get("stage", DEFAULT_STAGE)
        if stage not in self.stages:
            known = ", ".join(self.stages)
            self.fail(job.at("stage"), f"{where}stage {stage!r} is not in stages ({known})")
        if "script" not in job:
            self.fail(job.line, f"job {name!r} has no script")
        script = self._script(job, "script", where)
        if not script:
            self.fail(job.at("script"), f"{where}script is empty")
        timeout = self._timeout(job, where)
        allow_failure = self._allow_failure(job, where)
        when = self._when(job, where)  # warnings in the order of the keys checked
        variables = {**self.variables, **self._variables(job, where)}
        needs, needs_artifacts = self._needs(job, where)
        dependencies = self._names(job, "dependencies", where)
        if dependencies is None and needs is not None:  # GitLab: artifacts of the needed jobs
            dependencies = needs_artifacts
        return JobSpec(
            name=name,
            stage=stage,
            script=self._script(job, "before_script", where) + script,
            after_script=self._script(job, "after_script", where),
            variables=tuple(variables.items()),
            timeout=timeout,
            allow_failure=allow_failure,
            when=when,
            artifacts=self._artifacts(job, where),
            cache=self._caches(job, where),
            dependencies=dependencies,
            needs=needs,
            **self._images(job, where),
        )

    def _images(self, job: LineMap, where: str) -> dict[str, Any]:
        key = "image"
        try:
            image = read_image(job.get(key))
            key = "services"
            return {"image": image, "services": read_services(job.get(key))}
        except PipelineError as exc:
            self.fail(job.at(key), f"{where}{exc}")

    def _timeout(self, job: LineMap, where: str) -> int:
        if job.get("timeout") is None:
            return DEFAULT_TIMEOUT
        timeout = self._duration(job["timeout"], job.at("timeout"), f"{where}timeout")
        if timeout <= 0:
            self.fail(job.at("timeout"), f"{where}timeout must be longer than 0 seconds")
        return timeout

    def _allow_failure(self, job: LineMap, where: str) -> bool:
        allow_failure = job.get("allow_failure", False)
        if isinstance(allow_failure, LineMap):  # exit_codes: not something a plan can carry
            for key in allow_failure:
                note = " (allow_failure is false)"
                self.ignore(allow_failure.at(key), where, f"allow_failure:{key}", note)
            allow_failure = False
        if not isinstance(allow_failure, bool):
            self.fail(job.at("allow_failure"), f"{where}allow_failure must be true or false")
        return allow_failure

    def _when(self, job: LineMap, where: str) -> str:
        when = job.get("when", "on_success")
        if when in KEPT_WHENS:
            self.warnings.append(
                f"{self.source}:{job.at('when')}: {where}key 'when: {when}' is not supported;"
                f" the job is kept with when={when!r}"
            )
        elif when not in WHENS:
            self.fail(job.at("when"), f"{where}when must be one of {', '.join(WHENS)}")
        return str(when)

    def _script(self, job: LineMap, key: str, where: str) -> tuple[str, ...]:
        value = job.get(key)
        if value is None:
            return ()
        if isinstance(value, str):
            return (value,)
        if not isinstance(value, list):
            self.fail(job.at(key), f"{where}{key} must be a string or a list of strings")
        lines: list[str] = []
        for item in value:  # one level of nesting, as anchors of script lists make
            for line in item if isinstance(item, list) else [item]:
                if not isinstance(line, str):
                    hint = " (quote a line that contains ': ')" if isinstance(line, dict) else ""
                    at = line.line if isinstance(line, LineMap) else job.at(key)
                    self.fail(at, f"{where}{key} holds {_kind(line)}, not a string{hint}")
                lines.append(line)
        return tuple(lines)

    def _strings(self, mapping: LineMap, key: str, where: str) -> tuple[str, ...]:
        value = mapping.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.fail(mapping.at(key), f"{where}{key} must be a list of strings")
        return tuple(value)

    def _word(self, mapping: LineMap, key: str, where: str, allowed: tuple[str, ...]) -> str:
        value = mapping.get(key, allowed[0])
        if value not in allowed:
            self.fail(mapping.at(key), f"{where}{key} must be one of {', '.join(allowed)}")
        return str(value)

    def _flag(self, mapping: LineMap, key: str, where: str) -> bool:
        value = mapping.get(key, False)
        if not isinstance(value, bool):
            self.fail(mapping.at(key), f"{where}{key} must be true or false")
        return value

    def _duration(self, value: Any, line: int, what: str) -> int:
        try:
            return parse_duration(value)
        except PipelineError as exc:
            self.fail(line, f"{what}: {exc}")

    def _mapping(self, job: LineMap, key: str, where: str) -> LineMap:
        value = job[key]
        if not isinstance(value, LineMap):
            self.fail(job.at(key), f"{where}{key} must be a mapping, not {_kind(value)}")
        return value

    def _variables(self, owner: LineMap, where: str) -> dict[str, str]:
        if owner.get("variables") is None:
            return {}
        mapping = self._mapping(owner, "variables", where)
        out: dict[str, str] = {}
        for key, raw in mapping.items():
            if not isinstance(key, str):
                self.fail(mapping.at(key), f"{where}variable name {key!r} must be a string")
            value = raw.get("value", "") if isinstance(raw, LineMap) else raw
            for extra in raw if isinstance(raw, LineMap) else ():
                if extra not in VARIABLE_KEYS or (extra == "expand" and raw[extra] is not True):
                    self.ignore(raw.at(extra), where, f"variables:{key}:{extra}")
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                what = f"{where}variable {key!r} must be a string, a number or {{value: ...}}"
                self.fail(mapping.at(key), what)
            out[key] = str(value)
        return out

    def _artifacts(self, job: LineMap, where: str) -> Artifact | None:
        if job.get("artifacts") is None:
            return None
        value = self._mapping(job, "artifacts", where)
        here = f"{where}artifacts:"
        for key in value:
            if key not in ARTIFACT_KEYS:
                self.ignore(value.at(key), where, f"artifacts:{key}")
        expire_in = value.get("expire_in", "")
        if expire_in not in ("", "never"):
            self._duration(expire_in, value.at("expire_in"), f"{here}expire_in")
        name = value.get("name", "artifacts")
        if not isinstance(name, str | int):
            self.fail(value.at("name"), f"{here}name must be a string")
        artifact = Artifact(
            name=str(name) or "artifacts",
            paths=self._strings(value, "paths", here),
            exclude=self._strings(value, "exclude", here),
            untracked=self._flag(value, "untracked", here),
            when=ArtifactWhen(self._word(value, "when", here, WHENS)),
            expire_in=str(expire_in),
        )
        return artifact if artifact.paths or artifact.untracked else None

    def _caches(self, job: LineMap, where: str) -> tuple[Cache, ...]:
        value = job.get("cache")
        items = [] if value is None else value if isinstance(value, list) else [value]
        here = f"{where}cache:"
        caches: list[Cache] = []
        for item in items:
            if not isinstance(item, LineMap):
                self.fail(job.at("cache"), f"{where}cache must be a mapping or a list of them")
            for key in item:
                if key not in CACHE_KEYS:
                    self.ignore(item.at(key), where, f"cache:{key}")
            key = item.get("key", "default")
            if isinstance(key, LineMap):  # {files: [...], prefix: ...}: GitLab hashes the files
                prefix = key.get("prefix")
                fallback = f"{prefix}-default" if isinstance(prefix, str) else "default"
                self.ignore(item.at("key"), where, "cache:key:files", f" (the key is {fallback!r})")
                key = fallback
            if isinstance(key, bool) or not isinstance(key, str | int):
                self.fail(item.at("key"), f"{here}key must be a string")
            cache = Cache(
                key=str(key) or "default",
                paths=self._strings(item, "paths", here),
                untracked=self._flag(item, "untracked", here),
                policy=CachePolicy(self._word(item, "policy", here, CACHE_POLICIES)),
                when=ArtifactWhen(self._word(item, "when", here, WHENS)),
            )
            if cache.paths or cache.untracked:
                caches.append(cache)
        return tuple(caches)

    def _names(self, job: LineMap, key: str, where: str) -> tuple[str, ...] | None:
        if key not in job:
            return None
        value = job[key]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.fail(job.at(key), f"{where}{key} must be a list of job names")
        return tuple(value)

    def _needs(self, job: LineMap, where: str) -> tuple[tuple[str, ...] | None, tuple[str, ...]]:
        """Return the needed jobs and those of them whose artifacts the job downloads."""
        if "needs" not in job:
            return None, ()
        value = job["needs"]
        if not isinstance(value, list):
            self.fail(job.at("needs"), f"{where}needs must be a list")
        needs: list[str] = []
        artifacts: list[str] = []
        for item in value:
            entry = item if isinstance(item, LineMap) else LineMap(job.at("needs"))
            for key in entry:
                if key not in ("job", "artifacts", "optional"):
                    self.ignore(entry.at(key), where, f"needs:{key}")
            name = entry.get("job") if isinstance(item, LineMap) else item
            if name is None and isinstance(item, LineMap):
                continue  # a cross-project or parent pipeline need, reported above
            if not isinstance(name, str):
                self.fail(job.at("needs"), f"{where}needs must name jobs, not {_kind(name)}")
            if entry.get("optional") is True and name not in self.names:
                continue
            needs.append(name)
            if entry.get("artifacts", True) is True:
                artifacts.append(name)
            elif entry["artifacts"] is not False:
                self.fail(entry.at("artifacts"), f"{where}needs:artifacts must be true or false")
        return tuple(needs), tuple(artifacts)
