"""The S3 client conveyor uses for every object store (MinIO, versitygw, AWS S3), and streaming access.

minio-py is synchronous: handlers call these helpers from a worker thread (``asyncio.to_thread``), so a
large object never blocks the event loop and never sits in memory whole.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import urllib3
from minio import Minio
from minio.error import S3Error

from conveyor.pipeline.engine.errors import ObjectMissing, StorageError
from conveyor.pipeline.storage.settings import S3Settings

CHUNK_BYTES = 1 << 20
MISSING_CODES = frozenset({"NoSuchKey", "NoSuchObject", "NotFound", "NoSuchVersion"})


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


def iter_object(
    client: Minio, bucket: str, key: str, *, offset: int = 0, version: str | None = None, chunk: int = CHUNK_BYTES
) -> Iterator[bytes]:
    """The object's bytes from ``offset``, ``chunk`` at a time (one streaming GET, constant memory).

    A missing object raises :class:`ObjectMissing`, whichever handler reads it.
    """
    with translate_s3_errors(f"reading s3://{bucket}/{key}"):
        response = client.get_object(bucket, key, offset=offset, version_id=version)
    try:
        yield from response.stream(chunk)
    finally:
        response.close()
        response.release_conn()


class StreamReader(io.RawIOBase):
    """A read-only, forward-only file over an object: for csv, tarfile's stream mode, TextIOWrapper."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks, self._buffer, self.position = chunks, b"", 0

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        while not self._buffer:
            try:
                self._buffer = next(self._chunks)
            except StopIteration:
                return 0
        size = min(len(target), len(self._buffer))
        target[:size], self._buffer = self._buffer[:size], self._buffer[size:]
        self.position += size
        return size


class RangeReader(io.RawIOBase):
    """A seekable read-only file over an object, served by ranged GETs (zipfile needs to seek).

    Reads are buffered in blocks of ``block`` bytes, so memory stays bounded whatever the object's size.
    """

    def __init__(self, client: Minio, bucket: str, key: str, size: int, block: int = CHUNK_BYTES) -> None:
        self._client, self._bucket, self._key, self._size, self._block = client, bucket, key, size, block
        self._pos, self._cache_start, self._cache = 0, 0, b""

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, target: Any) -> int:
        if self._pos >= self._size:
            return 0
        if not self._cache_start <= self._pos < self._cache_start + len(self._cache):
            length = min(max(self._block, len(target)), self._size - self._pos)
            response = self._client.get_object(self._bucket, self._key, offset=self._pos, length=length)
            try:
                self._cache_start, self._cache = self._pos, response.read()
            finally:
                response.close()
                response.release_conn()
        start = self._pos - self._cache_start
        data = self._cache[start : start + len(target)]
        target[: len(data)] = data
        self._pos += len(data)
        return len(data)


def object_exists(client: Minio, bucket: str, key: str) -> bool:
    try:
        client.stat_object(bucket, key)
    except S3Error as exc:
        if exc.code in MISSING_CODES:
            return False
        raise
    return True


@contextmanager
def translate_s3_errors(what: str) -> Iterator[None]:
    """Re-raise minio-py and urllib3 errors as :class:`StorageError` (or :class:`ObjectMissing`)."""
    try:
        yield
    except S3Error as exc:
        if exc.code in MISSING_CODES:
            raise ObjectMissing(f"{what}: {exc.code}") from exc
        raise StorageError(f"{what}: {exc.code}: {exc.message}") from exc
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise StorageError(f"{what}: {exc}") from exc
