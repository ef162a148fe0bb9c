"""The build directory on an engine that does not share this host's file system.

A local engine bind-mounts the runner's build directory. A remote one (a
`tcp://` engine, a docker-machine machine) cannot: there the build directory
is a volume of the build, and the runner copies it through the Engine API,
host to container before a containerized stage when host stages changed it
(sources, caches, artifacts), and container to host after (for caches,
artifacts and the next stages). Only what changed sides is copied.
"""

from __future__ import annotations

import shutil
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from docker.models.containers import Container

CHUNK = 1024 * 1024


def push(container: Container, pairs: Sequence[tuple[Path, str]]) -> None:
    """Copy each host path (a directory, recursively, or a file) to its path in the container."""
    with tempfile.TemporaryFile() as archive:
        with tarfile.open(fileobj=archive, mode="w") as tar:
            for host, inside in pairs:
                tar.add(str(host), arcname=inside.lstrip("/"))
        archive.seek(0)
        if not container.put_archive("/", archive.read()):
            raise OSError(f"the engine refused the build directory for {container.name}")


def pull(container: Container, host: Path, inside: str) -> None:
    """Replace the host directory's contents with the container's directory `inside`."""
    bits, _ = container.get_archive(inside)
    with tempfile.TemporaryFile() as archive:
        for chunk in bits:
            archive.write(chunk)
        archive.seek(0)
        for entry in list(host.iterdir()):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        top = PurePosixPath(inside).name
        with tarfile.open(fileobj=archive, mode="r") as tar:
            members = []
            for member in tar.getmembers():
                parts = PurePosixPath(member.name).parts
                if len(parts) < 2 or parts[0] != top:
                    continue  # the directory itself
                member.name = str(PurePosixPath(*parts[1:]))
                members.append(member)
            tar.extractall(host, members=members, filter="tar")
