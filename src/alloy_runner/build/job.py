"""The job, shaped like GitLab Runner API v4's job payload, whichever source it came from."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

from alloy_runner.build.image import Image, Service, services_from_payload
from alloy_runner.exceptions import JobPayloadError

DEFAULT_TIMEOUT = 3600  # seconds, GitLab's default job timeout


class CachePolicy(StrEnum):
    """When a cache moves: restored before the build (pull), archived after it (push), or both."""

    PULL_PUSH = "pull-push"
    PULL = "pull"
    PUSH = "push"

    @property
    def pulls(self) -> bool:
        return self is not CachePolicy.PUSH

    @property
    def pushes(self) -> bool:
        return self is not CachePolicy.PULL


class ArtifactWhen(StrEnum):
    """Which build results archive an artifact (GitLab's `artifacts:when`, also `cache:when`)."""

    ON_SUCCESS = "on_success"
    ON_FAILURE = "on_failure"
    ALWAYS = "always"


WireEnum = TypeVar("WireEnum", CachePolicy, ArtifactWhen)


def _get(data: dict[str, Any], key: str, kind: type | tuple[type, ...], default: Any) -> Any:
    value = data.get(key, default)
    if value is None:
        return default
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise JobPayloadError(f"job payload: {key!r} has the wrong type ({type(value).__name__})")
    return value


def _choice(data: dict[str, Any], key: str, kind: type[WireEnum], default: WireEnum) -> WireEnum:
    value = str(_get(data, key, str, default.value))
    try:
        return kind(value)
    except ValueError:
        choices = ", ".join(member.value for member in kind)
        raise JobPayloadError(f"job payload: {key!r} is {value!r}, not one of {choices}") from None


def _str_list(data: dict[str, Any], key: str) -> tuple[str, ...]:
    values = _get(data, key, list, [])
    return tuple(str(v) for v in values)


@dataclass(frozen=True)
class Variable:
    """One CI variable (`masked` values never reach a log, metric or debug page)."""

    key: str
    value: str
    public: bool = True
    masked: bool = False
    file: bool = False
    raw: bool = False  # GitLab's `expand: false`: references in the value stay as written

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> Variable:
        variable = cls(
            key=str(_get(data, "key", str, "")),
            value=str(_get(data, "value", (str, int, float), "")),
            public=bool(data.get("public", True)),
            masked=bool(data.get("masked", False)),
            file=bool(data.get("file", False)),
            raw=bool(data.get("raw", False)),
        )
        if problem := variable_problem(variable.key, variable.value):
            raise JobPayloadError(f"job payload: {problem}")
        return variable

    def to_payload(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "value": self.value,
            "public": self.public,
            "masked": self.masked,
            "file": self.file,
            "raw": self.raw,
        }


MIN_MASKED_LENGTH = 8  # GitLab refuses to mask shorter values: they would mask common letters


def variable_problem(key: str, value: str) -> str | None:
    """Return why `key=value` cannot be a process's environment entry, or None if it can."""
    if not key or "=" in key or "\0" in key:
        return f"variable {key!r}: a name must be non-empty, without '=' or NUL"
    if "\0" in value:
        return f"variable {key}: its value holds a NUL byte"
    return None


@dataclass(frozen=True)
class Step:
    """A script step: `script` (before_script + script) or `after_script`."""

    name: str
    script: tuple[str, ...]
    timeout: int = DEFAULT_TIMEOUT
    when: str = "on_success"
    allow_failure: bool = False

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> Step:
        return cls(
            name=str(_get(data, "name", str, "script")),
            script=_str_list(data, "script"),
            timeout=int(_get(data, "timeout", int, DEFAULT_TIMEOUT)),
            when=str(_get(data, "when", str, "on_success")),
            allow_failure=bool(data.get("allow_failure", False)),
        )

    def to_payload(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "script": list(self.script),
            "timeout": self.timeout,
            "when": self.when,
            "allow_failure": self.allow_failure,
        }


@dataclass(frozen=True)
class Artifact:
    """What to archive after the build script, and when (`on_success`, `on_failure`, `always`)."""

    name: str = "artifacts"
    paths: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    untracked: bool = False
    when: ArtifactWhen = ArtifactWhen.ON_SUCCESS
    artifact_type: str = "archive"
    artifact_format: str = "zip"
    expire_in: str = ""

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> Artifact:
        return cls(
            name=str(_get(data, "name", str, "artifacts")) or "artifacts",
            paths=_str_list(data, "paths"),
            exclude=_str_list(data, "exclude"),
            untracked=bool(data.get("untracked", False)),
            when=_choice(data, "when", ArtifactWhen, ArtifactWhen.ON_SUCCESS),
            artifact_type=str(_get(data, "artifact_type", str, "archive")),
            artifact_format=str(_get(data, "artifact_format", str, "zip")),
            expire_in=str(_get(data, "expire_in", str, "")),
        )

    def to_payload(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "paths": list(self.paths),
            "exclude": list(self.exclude),
            "untracked": self.untracked,
            "when": self.when.value,
            "artifact_type": self.artifact_type,
            "artifact_format": self.artifact_format,
            "expire_in": self.expire_in,
        }


@dataclass(frozen=True)
class Cache:
    """A cache to restore before and archive after the build (`policy`: pull-push, pull, push)."""

    key: str = "default"
    paths: tuple[str, ...] = ()
    untracked: bool = False
    policy: CachePolicy = CachePolicy.PULL_PUSH
    when: ArtifactWhen = ArtifactWhen.ON_SUCCESS

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> Cache:
        return cls(
            key=str(_get(data, "key", str, "default")) or "default",
            paths=_str_list(data, "paths"),
            untracked=bool(data.get("untracked", False)),
            policy=_choice(data, "policy", CachePolicy, CachePolicy.PULL_PUSH),
            when=_choice(data, "when", ArtifactWhen, ArtifactWhen.ON_SUCCESS),
        )

    def to_payload(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "paths": list(self.paths),
            "untracked": self.untracked,
            "policy": self.policy.value,
            "when": self.when.value,
        }


@dataclass(frozen=True)
class Dependency:
    """A job whose artifacts this job downloads before its build script."""

    id: int
    name: str
    token: str = ""
    artifacts_filename: str = ""
    artifacts_size: int = 0

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> Dependency:
        files = _get(data, "artifacts_file", dict, {})
        return cls(
            id=int(_get(data, "id", int, 0)),
            name=str(_get(data, "name", str, "")),
            token=str(_get(data, "token", str, "")),
            artifacts_filename=str(files.get("filename") or ""),
            artifacts_size=int(files.get("size") or 0),
        )

    def to_payload(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "name": self.name, "token": self.token}
        if self.artifacts_filename:
            data["artifacts_file"] = {
                "filename": self.artifacts_filename,
                "size": self.artifacts_size,
            }
        return data


@dataclass(frozen=True)
class GitInfo:
    """Where the sources come from (`repo_url` empty: the job has no sources to fetch)."""

    repo_url: str = ""
    ref: str = ""
    sha: str = ""
    before_sha: str = ""
    ref_type: str = "branch"
    refspecs: tuple[str, ...] = ()
    depth: int = 0

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> GitInfo:
        return cls(
            repo_url=str(_get(data, "repo_url", str, "")),
            ref=str(_get(data, "ref", str, "")),
            sha=str(_get(data, "sha", str, "")),
            before_sha=str(_get(data, "before_sha", str, "")),
            ref_type=str(_get(data, "ref_type", str, "branch")),
            refspecs=_str_list(data, "refspecs"),
            depth=int(_get(data, "depth", int, 0)),
        )

    def to_payload(self) -> dict[str, Any]:
        return {
            "repo_url": self.repo_url,
            "ref": self.ref,
            "sha": self.sha,
            "before_sha": self.before_sha,
            "ref_type": self.ref_type,
            "refspecs": list(self.refspecs),
            "depth": self.depth,
        }


@dataclass(frozen=True)
class Job:
    """One job as the API v4 `POST /jobs/request` returns it."""

    id: int
    token: str
    name: str
    stage: str
    project_id: int = 0
    project_name: str = ""
    git_info: GitInfo = field(default_factory=GitInfo)
    timeout: int = DEFAULT_TIMEOUT
    variables: tuple[Variable, ...] = ()
    steps: tuple[Step, ...] = ()
    artifacts: tuple[Artifact, ...] = ()
    cache: tuple[Cache, ...] = ()
    dependencies: tuple[Dependency, ...] = ()
    queued_seconds: float | None = None  # job_info.time_in_queue_seconds when the source knows it
    image: Image | None = None  # the job's `image:`; None: the executor's default
    services: tuple[Service, ...] = ()
    # job_info.project_jobs_running_on_instance_runners_count, as the coordinator words it
    project_jobs_running: str = ""
    # The project's git strategy: fetch (True) or clone (False) when GIT_STRATEGY is not set.
    allow_git_fetch: bool = True

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> Job:
        """Build a Job from the API v4 JSON; raise JobPayloadError when it is malformed."""
        if not isinstance(data, dict):
            raise JobPayloadError("job payload: expected a JSON object")
        info = _get(data, "job_info", dict, {})
        runner_info = _get(data, "runner_info", dict, {})
        steps = tuple(Step.from_payload(s) for s in _get(data, "steps", list, []))
        if not any(step.name == "script" and step.script for step in steps):
            # GitLab always sends one; without it, "success" would claim work that never ran.
            raise JobPayloadError("job payload: no 'script' step: the job has nothing to run")
        queued = info.get("time_in_queue_seconds")
        image = Image.from_payload(data.get("image"))
        services = services_from_payload(data.get("services"))
        return cls(
            id=int(_get(data, "id", int, 0)),
            token=str(_get(data, "token", str, "")),
            name=str(_get(info, "name", str, "")),
            stage=str(_get(info, "stage", str, "test")),
            project_id=int(_get(info, "project_id", int, 0)),
            project_name=str(_get(info, "project_name", str, "")),
            git_info=GitInfo.from_payload(_get(data, "git_info", dict, {})),
            timeout=int(_get(runner_info, "timeout", int, DEFAULT_TIMEOUT)),
            variables=tuple(Variable.from_payload(v) for v in _get(data, "variables", list, [])),
            steps=steps,
            artifacts=tuple(
                Artifact.from_payload(a) for a in _get(data, "artifacts", list, []) if a
            ),
            cache=tuple(Cache.from_payload(c) for c in _get(data, "cache", list, []) if c),
            dependencies=tuple(
                Dependency.from_payload(d) for d in _get(data, "dependencies", list, [])
            ),
            queued_seconds=float(queued) if isinstance(queued, int | float) else None,
            image=image,
            services=services,
            project_jobs_running=str(
                _get(info, "project_jobs_running_on_instance_runners_count", str, "")
            ),
            allow_git_fetch=bool(_get(data, "allow_git_fetch", bool, True)),
        )

    def to_payload(self) -> dict[str, Any]:
        """Return the API v4 JSON of this job."""
        info: dict[str, Any] = {
            "name": self.name,
            "stage": self.stage,
            "project_id": self.project_id,
            "project_name": self.project_name,
        }
        if self.queued_seconds is not None:
            info["time_in_queue_seconds"] = self.queued_seconds
        extra: dict[str, Any] = {}
        if self.image is not None:
            extra["image"] = self.image.to_payload()
        if self.services:
            extra["services"] = [s.to_payload() for s in self.services]
        return {
            "id": self.id,
            "token": self.token,
            "allow_git_fetch": self.allow_git_fetch,
            "job_info": info,
            "git_info": self.git_info.to_payload(),
            "runner_info": {"timeout": self.timeout},
            "variables": [v.to_payload() for v in self.variables],
            "steps": [s.to_payload() for s in self.steps],
            "artifacts": [a.to_payload() for a in self.artifacts],
            "cache": [c.to_payload() for c in self.cache],
            "dependencies": [d.to_payload() for d in self.dependencies],
            **extra,
        }

    def step(self, name: str) -> Step | None:
        """Return the step called `name` (`script` or `after_script`), if the job has one."""
        return next((s for s in self.steps if s.name == name), None)

    @property
    def masked_values(self) -> tuple[str, ...]:
        """Return the values the log must never show."""
        return tuple(v.value for v in self.variables if v.masked and v.value)
