"""An S3-compatible server for the distributed cache tests: moto in server mode, on loopback.

No S3 store runs here; moto's server speaks the S3 REST API (signatures, buckets,
objects), so the runner's boto3 client talks to it as it would to a real store.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any, Self

import boto3
import httpx

from tests.support.http_client import free_port
from tests.support.polling import wait_until
from tests.support.service import Service

ACCESS_KEY = "AKIAALLOYRUNNERTEST"
SECRET_KEY = "alloy-runner-test-secret"


class MotoS3(Service):
    """`python -m moto.server` on 127.0.0.1 and a free port; `client()` talks to it.

    With `check_keys`, moto checks every request's signature against the keys of its IAM,
    which holds none: every access key is wrong.
    """

    def __init__(self, *, check_keys: bool = False) -> None:
        self.port = free_port()
        self._env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "0"} if check_keys else None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> Self:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=self._env,
        )
        wait_until(self._ready, 30.0, 0.1, "moto's S3 server")
        return self

    def _ready(self) -> bool:
        assert self._proc is not None
        assert self._proc.poll() is None, "moto's server exited"
        try:
            httpx.get(f"http://{self.address}/moto-api/", timeout=1.0)
        except httpx.TransportError:
            return False
        return True

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    def client(self) -> Any:
        return boto3.session.Session().client(
            "s3",
            endpoint_url=f"http://{self.address}",
            region_name="us-east-1",
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )

    def cache_config(self, bucket: str, *, shared: bool = True, extra: str = "") -> str:
        """Return the [runners.cache] tables of a runner that keeps its caches here."""
        return (
            "[runners.cache]\n"
            'Type = "s3"\nPath = "ci"\n'
            f"Shared = {'true' if shared else 'false'}\n"
            f"{extra}"
            "[runners.cache.s3]\n"
            f'ServerAddress = "{self.address}"\n'
            f'AccessKey = "{ACCESS_KEY}"\nSecretKey = "{SECRET_KEY}"\n'
            f'BucketName = "{bucket}"\nBucketLocation = "us-east-1"\nInsecure = true\n'
        )
