"""The distributed cache: each cache archive also lives in an S3-compatible store.

The runner process moves the archive between the store and its cache_dir: the
restore stage then extracts the local copy, the archive stage writes it, as for
a local cache. Nothing here fails a job: a store that cannot be reached, a wrong
key or a missing object is a warning in the job's log, as in GitLab Runner.
"""

from __future__ import annotations

import asyncio
import functools
import posixpath
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from alloy_runner.exceptions import CacheStoreError

if TYPE_CHECKING:
    from alloy_runner.config.model import CacheConfig, CacheS3Config, RunnerConfig

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def _why(exc: Exception) -> str:
    if isinstance(exc, CacheStoreError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}".splitlines()[0]


class ObjectStore(Protocol):
    """What the cache needs of a store: get an object into a file, put a file as an object."""

    def download(self, name: str, dest: Path) -> bool:
        """Write object `name` to `dest`; False when there is no such object."""

    def upload(self, name: str, source: Path) -> None:
        """Store `source` as object `name`."""


class TransferMetrics(Protocol):
    def cache_transfer(self, runner: str, operation: str, ok: bool, seconds: float) -> None:
        """A cache download or upload ended after `seconds`."""


@dataclass(frozen=True)
class Transfer:
    """What one transfer did, for the job's log."""

    ok: bool
    message: str


class RemoteCache:
    """The objects of one runner's caches in a store, named as GitLab Runner names them."""

    def __init__(
        self,
        config: CacheConfig,
        runner: RunnerConfig,
        store: ObjectStore,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._runner = runner
        self._store = store
        self._clock = clock

    def object_name(self, project: str, key: str) -> str:
        """`Path/runner/<short token>/project/<project>/<key>`; no runner part when Shared."""
        parts = [self._config.path] if self._config.path else []
        if not self._config.shared:
            owner = self._runner.token[:8] if self._runner.token else self._runner.name
            parts += ["runner", _UNSAFE.sub("_", owner)]
        parts += [
            "project",
            _UNSAFE.sub("_", project) or "project",
            _UNSAFE.sub("_", key) or "default",
        ]
        return posixpath.join(*parts)

    async def download(self, name: str, dest: Path, metrics: TransferMetrics) -> Transfer:
        began = self._clock()
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            found = await asyncio.to_thread(self._store.download, name, dest)
        except Exception as exc:  # nothing the store does may fail the job
            metrics.cache_transfer(self._runner.name, "download", False, self._clock() - began)
            return Transfer(False, f"WARNING: Failed to download the cache {name}: {_why(exc)}")
        metrics.cache_transfer(self._runner.name, "download", True, self._clock() - began)
        if not found:
            return Transfer(True, f"No cache {name} in the distributed cache yet")
        return Transfer(True, f"Downloaded the cache {name} ({dest.stat().st_size} bytes)")

    async def upload(self, name: str, source: Path, metrics: TransferMetrics) -> Transfer:
        if not source.exists():
            return Transfer(True, f"No cache archive to upload as {name}")
        size = source.stat().st_size
        limit = self._config.max_uploaded_archive_size
        if limit and size > limit:
            return Transfer(
                False,
                f"WARNING: The cache archive is {size} bytes, over MaxUploadedArchiveSize "
                f"({limit}); not uploaded",
            )
        began = self._clock()
        try:
            await asyncio.to_thread(self._store.upload, name, source)
        except Exception as exc:  # nothing the store does may fail the job
            metrics.cache_transfer(self._runner.name, "upload", False, self._clock() - began)
            return Transfer(False, f"WARNING: Failed to upload the cache {name}: {_why(exc)}")
        metrics.cache_transfer(self._runner.name, "upload", True, self._clock() - began)
        return Transfer(True, f"Uploaded the cache {name} ({size} bytes)")

    async def download_all(
        self, project: str, caches: list[tuple[str, Path]], log: Log, metrics: TransferMetrics
    ) -> None:
        """Fetch each (key, local archive) of a job before its restore stage extracts them."""
        for key, path in caches:
            log((await self.download(self.object_name(project, key), path, metrics)).message)

    async def upload_all(
        self, project: str, caches: list[tuple[str, Path]], log: Log, metrics: TransferMetrics
    ) -> None:
        """Store each (key, local archive) the archive stage wrote."""
        for key, path in caches:
            log((await self.upload(self.object_name(project, key), path, metrics)).message)


Log = Callable[[str], None]


@functools.lru_cache(maxsize=16)
def _store(config: CacheS3Config) -> ObjectStore:
    from alloy_runner.cache.s3 import S3Store

    return S3Store(config)


def for_runner(runner: RunnerConfig) -> RemoteCache | None:
    """Return the runner's distributed cache, or None when its caches stay on this host."""
    if runner.cache.type != "s3":
        return None
    return RemoteCache(runner.cache, runner, _store(runner.cache.s3))
