"""The S3 client conveyor uses for every object store (MinIO, versitygw, AWS S3), built from its section."""

from __future__ import annotations

import urllib3
from minio import Minio

from pipeline.settings import S3Settings


def s3_client(settings: S3Settings, *, timeout_seconds: float = 30.0, retries: int = 3) -> Minio:
    """A minio-py client for ``settings``; ``retries=0`` for probes that must answer quickly."""
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=min(timeout_seconds, 5.0), read=timeout_seconds),
        retries=urllib3.Retry(total=retries, backoff_factor=0.2, status_forcelist=(500, 502, 503, 504)),
        maxsize=16,
    )
    return Minio(
        settings.netloc,
        access_key=settings.access_key,
        secret_key=settings.secret_key.get_secret_value(),
        secure=settings.secure,
        region=settings.region,
        http_client=http,
    )
