"""A job's `artifacts` and `cache`, with GitLab's expansion of their paths and keys."""

from __future__ import annotations

from alloy_runner.build.job import Artifact, ArtifactWhen, Cache, CachePolicy
from alloy_runner.pipeline.marked_yaml import LineMap
from alloy_runner.pipeline.report import WHENS, Reporter
from alloy_runner.pipeline.variables import VarTable

ARTIFACT_KEYS = ("paths", "exclude", "name", "when", "expire_in", "untracked")
ARTIFACT_NO_EFFECT = ("reports", "expose_as", "public", "access")
CACHE_KEYS = ("key", "paths", "policy", "untracked", "when", "fallback_keys", "unprotect")
CACHE_POLICIES = tuple(policy.value for policy in CachePolicy)


def read_artifacts(r: Reporter, job: LineMap, where: str, table: VarTable) -> Artifact | None:
    if job.get("artifacts") is None:
        return None
    value = r.mapping(job, "artifacts", where)
    here = f"{where}artifacts:"
    for key in value:
        if key in ARTIFACT_NO_EFFECT:
            r.ignore(value.at(key), where, f"artifacts:{key}")
        elif key not in ARTIFACT_KEYS:
            r.fail(value.at(key), f"{here} unknown key {key!r}")
    expire_in = value.get("expire_in", "")
    if expire_in not in ("", "never"):
        r.duration(expire_in, value.at("expire_in"), f"{here}expire_in")
    name = value.get("name", "artifacts")
    if not isinstance(name, str | int):
        r.fail(value.at("name"), f"{here}name must be a string")
    artifact = Artifact(
        name=table.expand(str(name)) or "artifacts",
        paths=tuple(table.expand(p) for p in r.strings(value, "paths", here)),
        exclude=tuple(table.expand(p) for p in r.strings(value, "exclude", here)),
        untracked=r.flag(value, "untracked", here),
        when=ArtifactWhen(r.word(value, "when", here, WHENS)),
        expire_in=str(expire_in),
    )
    return artifact if artifact.paths or artifact.untracked else None


def read_caches(r: Reporter, job: LineMap, where: str, table: VarTable) -> tuple[Cache, ...]:
    value = job.get("cache")
    items = [] if value is None else value if isinstance(value, list) else [value]
    here = f"{where}cache:"
    caches: list[Cache] = []
    for item in items:
        if not isinstance(item, LineMap):
            r.fail(job.at("cache"), f"{where}cache must be a mapping or a list of them")
        for key in item:
            if key in ("fallback_keys", "unprotect"):
                r.ignore(item.at(key), where, f"cache:{key}")
            elif key not in CACHE_KEYS:
                r.fail(item.at(key), f"{here} unknown key {key!r}")
        key = item.get("key", "default")
        if isinstance(key, LineMap):  # {files: [...], prefix: ...}: GitLab hashes the files
            prefix = key.get("prefix")
            fallback = f"{prefix}-default" if isinstance(prefix, str) else "default"
            r.ignore(item.at("key"), where, "cache:key:files", f" (the key is {fallback!r})")
            key = fallback
        if isinstance(key, bool) or not isinstance(key, str | int):
            r.fail(item.at("key"), f"{here}key must be a string")
        cache = Cache(
            key=table.expand(str(key)) or "default",
            paths=tuple(table.expand(p) for p in r.strings(item, "paths", here)),
            untracked=r.flag(item, "untracked", here),
            policy=CachePolicy(r.word(item, "policy", here, CACHE_POLICIES)),
            when=ArtifactWhen(r.word(item, "when", here, WHENS)),
        )
        if cache.paths or cache.untracked:
            caches.append(cache)
    return tuple(caches)
