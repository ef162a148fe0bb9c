"""An S3-compatible store for the distributed cache, through boto3 (the AWS SDK for Python).

boto3 rather than minio: it is the SDK GitLab Runner's current S3 adapter mirrors (AWS
SDK), it takes `AuthenticationType = "iam"` as its own credential chain (instance
profiles, web identity, the environment), and botocore's retry and timeout settings
bound every call.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import boto3
from boto3.exceptions import Boto3Error
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError

from alloy_runner.config.model import CacheS3Config
from alloy_runner.exceptions import CacheStoreError

CONNECT_TIMEOUT = 5.0  # seconds
READ_TIMEOUT = 60.0
ATTEMPTS = 2  # one retry: a dead store costs the job seconds, not minutes
MISSING = ("404", "NoSuchKey", "NotFound")


class S3Store:
    """Objects in one bucket; every failure becomes a one-line CacheStoreError."""

    def __init__(self, config: CacheS3Config) -> None:
        self._config = config
        self._bucket = config.bucket_name
        self._client: Any = None
        self._lock = threading.Lock()

    def _s3(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = self._make()
            return self._client

    def _make(self) -> Any:
        config = self._config
        endpoint = None
        if config.server_address:
            scheme = "http" if config.insecure else "https"
            endpoint = f"{scheme}://{config.server_address}"
        credentials: dict[str, str] = {}
        if config.authentication_type == "access-key":
            credentials = {
                "aws_access_key_id": config.access_key,
                "aws_secret_access_key": config.secret_key,
            }
            if config.session_token:
                credentials["aws_session_token"] = config.session_token
        return boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint,
            region_name=config.bucket_location or "us-east-1",
            config=BotoConfig(
                connect_timeout=CONNECT_TIMEOUT,
                read_timeout=READ_TIMEOUT,
                retries={"max_attempts": ATTEMPTS, "mode": "standard"},
                # An S3-compatible server at an address serves buckets as paths.
                s3={"addressing_style": "path" if endpoint else "auto"},
            ),
            **credentials,
        )

    def download(self, name: str, dest: Path) -> bool:
        tmp = dest.with_name(f".{dest.name}.download")
        try:
            self._s3().download_file(self._bucket, name, str(tmp))
        except ClientError as exc:
            tmp.unlink(missing_ok=True)
            if str(exc.response.get("Error", {}).get("Code")) in MISSING:
                self._check_bucket()  # a missing bucket is a fault, a missing object is not
                return False
            raise CacheStoreError(_why(exc)) from None
        except (BotoCoreError, Boto3Error, OSError) as exc:
            tmp.unlink(missing_ok=True)
            raise CacheStoreError(_why(exc)) from None
        tmp.replace(dest)
        return True

    def _check_bucket(self) -> None:
        try:
            self._s3().head_bucket(Bucket=self._bucket)
        except (BotoCoreError, ClientError) as exc:
            raise CacheStoreError(f"bucket {self._bucket}: {_why(exc)}") from None

    def upload(self, name: str, source: Path) -> None:
        try:
            self._s3().upload_file(str(source), self._bucket, name)
        except (BotoCoreError, ClientError, Boto3Error, OSError) as exc:
            raise CacheStoreError(_why(exc)) from None


def _why(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'error')}: {error.get('Message', '')}".strip(": ")
    return f"{type(exc).__name__}: {exc}".splitlines()[0]
