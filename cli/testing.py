"""A kit for handler authors: unit-test a handler with no services running.

:func:`job_context` builds the context a worker would pass your handler, for a job on an object held in
a :class:`MemoryObjectStore` (an in-memory stand-in for the S3 client, with the calls handlers make:
get, stat, put, copy, remove, list, tags). Checkpoints and parents' results live in a
:class:`MemoryJobState`. Call your handler with the context, as the worker would::

    async def test_my_handler() -> None:
        store = MemoryObjectStore()
        store.add("uploads", "in/report.csv", b"id,name\\n1,a\\n")
        ctx = job_context("my.handler", store=store, source=("uploads", "in/report.csv"), params={"x": 1})
        assert await my_handler(ctx) == {...}

The context's ``cancelled`` event, ``checkpoint()``/``last_checkpoint()``, ``parent_results()``,
``in_thread()`` and ``log`` behave as in a worker; objects the handler writes are in ``store``.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, BinaryIO

import urllib3
from minio import Minio
from minio.commonconfig import CopySource, Tags
from minio.datatypes import Object
from minio.deleteobjects import DeleteError, DeleteObject
from minio.error import S3Error
from minio.helpers import ObjectWriteResult
from urllib3 import HTTPHeaderDict

from conveyor.db.records import JobRow, JobStatus
from conveyor.pipeline.engine.ids import uuid7
from conveyor.pipeline.handlers.base import JobContext, JobState

__all__ = ["MemoryJobState", "MemoryObjectStore", "StoredObject", "job_context", "job_row"]


@dataclass
class StoredObject:
    """One object version as :class:`MemoryObjectStore` keeps it."""

    data: bytes
    content_type: str = "application/octet-stream"
    metadata: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    version_id: str | None = None
    last_modified: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def etag(self) -> str:
        return hashlib.md5(self.data, usedforsecurity=False).hexdigest()


class MemoryObjectStore(Minio):
    """An S3 client whose buckets live in a dict: the calls conveyor's handlers make, nothing on the network.

    A missing object raises minio's own ``S3Error`` with code ``NoSuchKey``, as a real server answers.
    Any other client method is not supported and says so.
    """

    def __init__(self) -> None:
        super().__init__("memory.invalid", access_key="memory", secret_key="memory", secure=False)
        self.buckets: dict[str, dict[str, StoredObject]] = {}

    def add(self, bucket: str, key: str, data: bytes, **details: Any) -> StoredObject:
        """Put an object in place directly (test setup), creating the bucket if needed."""
        stored = StoredObject(data, **details)
        self.buckets.setdefault(bucket, {})[key] = stored
        return stored

    def data(self, bucket: str, key: str) -> bytes:
        """An object's bytes (test assertions)."""
        return self._find(bucket, key).data

    def _find(self, bucket: str, key: str, version_id: str | None = None) -> StoredObject:
        stored = self.buckets.get(bucket, {}).get(key)
        if stored is None or (version_id is not None and stored.version_id != version_id):
            raise _missing(bucket, key)
        return stored

    def bucket_exists(self, bucket_name: str) -> bool:
        return bucket_name in self.buckets

    def make_bucket(self, bucket_name: str, location: str | None = None, object_lock: bool = False) -> None:
        self.buckets.setdefault(bucket_name, {})

    def get_object(
        self, bucket_name: str, object_name: str, offset: int = 0, length: int = 0, *args: Any,
        version_id: str | None = None, **kwargs: Any,
    ) -> urllib3.BaseHTTPResponse:  # fmt: skip
        stored = self._find(bucket_name, object_name, version_id)
        body = stored.data[offset : offset + length if length else None]
        headers = HTTPHeaderDict({"ETag": f'"{stored.etag}"', "Content-Type": stored.content_type,
                                  "Content-Length": str(len(body))})  # fmt: skip
        return urllib3.HTTPResponse(body=io.BytesIO(body), headers=headers, status=200, preload_content=False)

    def stat_object(
        self, bucket_name: str, object_name: str, *args: Any, version_id: str | None = None, **kwargs: Any
    ) -> Object:
        stored = self._find(bucket_name, object_name, version_id)
        metadata = {f"x-amz-meta-{k}": v for k, v in stored.metadata.items()}
        return Object(bucket_name, object_name, last_modified=stored.last_modified, etag=stored.etag,
                      size=len(stored.data), metadata=metadata, version_id=stored.version_id,
                      content_type=stored.content_type)  # fmt: skip

    def put_object(
        self, bucket_name: str, object_name: str, data: BinaryIO, length: int,
        content_type: str = "application/octet-stream", metadata: Mapping[str, Any] | None = None,
        *args: Any, tags: Tags | None = None, **kwargs: Any,
    ) -> ObjectWriteResult:  # fmt: skip
        body = data.read() if length < 0 else data.read(length)
        stored = self.add(bucket_name, object_name, body, content_type=content_type,
                          metadata=_user_metadata(metadata), tags=dict(tags or {}))  # fmt: skip
        return _written(bucket_name, object_name, stored)

    def copy_object(
        self, bucket_name: str, object_name: str, source: CopySource, *args: Any,
        metadata: Mapping[str, Any] | None = None, tags: Tags | None = None, **kwargs: Any,
    ) -> ObjectWriteResult:  # fmt: skip
        original = self._find(source.bucket_name, source.object_name, source.version_id)
        content_type = str((metadata or {}).get("Content-Type", original.content_type))
        stored = self.add(bucket_name, object_name, original.data, content_type=content_type,
                          metadata=_user_metadata(metadata) if metadata else dict(original.metadata),
                          tags=dict(tags) if tags is not None else dict(original.tags))  # fmt: skip
        return _written(bucket_name, object_name, stored)

    def remove_object(self, bucket_name: str, object_name: str, version_id: str | None = None) -> None:
        self.buckets.get(bucket_name, {}).pop(object_name, None)  # S3 deletes are idempotent

    def remove_objects(
        self, bucket_name: str, delete_object_list: Iterable[DeleteObject], bypass_governance_mode: bool = False
    ) -> Iterator[DeleteError]:
        for deleted in delete_object_list:
            self.remove_object(bucket_name, deleted.name)
        return iter(())

    def list_objects(
        self, bucket_name: str, prefix: str | None = None, recursive: bool = False, *args: Any, **kwargs: Any
    ) -> Iterator[Object]:
        for key, stored in sorted(self.buckets.get(bucket_name, {}).items()):
            if key.startswith(prefix or ""):
                yield Object(bucket_name, key, last_modified=stored.last_modified, etag=stored.etag,
                             size=len(stored.data), version_id=stored.version_id)  # fmt: skip

    def get_object_tags(self, bucket_name: str, object_name: str, version_id: str | None = None) -> Tags | None:
        tags = Tags.new_object_tags()
        tags.update(self._find(bucket_name, object_name, version_id).tags)
        return tags

    def set_object_tags(self, bucket_name: str, object_name: str, tags: Tags, version_id: str | None = None) -> None:
        self._find(bucket_name, object_name, version_id).tags = dict(tags)

    def __getattribute__(self, name: str) -> Any:
        value = super().__getattribute__(name)
        if callable(value) and not name.startswith("_") and name not in _SUPPORTED:
            raise NotImplementedError(f"MemoryObjectStore does not support {name}(); supported: {sorted(_SUPPORTED)}")
        return value


_SUPPORTED = frozenset({
    "add", "data", "bucket_exists", "make_bucket", "get_object", "stat_object", "put_object", "copy_object",
    "remove_object", "remove_objects", "list_objects", "get_object_tags", "set_object_tags",
})  # fmt: skip


def _missing(bucket: str, key: str) -> S3Error:
    response = urllib3.HTTPResponse(body=b"", status=404)
    return S3Error(response, "NoSuchKey", "The specified key does not exist.", f"/{bucket}/{key}", "memory", "memory",
                   bucket_name=bucket, object_name=key)  # fmt: skip


def _user_metadata(metadata: Mapping[str, Any] | None) -> dict[str, str]:
    """User metadata without the standard headers minio-py accepts in the same mapping."""
    return {k.removeprefix("x-amz-meta-"): str(v) for k, v in (metadata or {}).items() if k.lower() != "content-type"}


def _written(bucket: str, key: str, stored: StoredObject) -> ObjectWriteResult:
    return ObjectWriteResult(bucket, key, stored.version_id, stored.etag, HTTPHeaderDict(),
                             last_modified=stored.last_modified)  # fmt: skip


@dataclass
class MemoryJobState(JobState):
    """Checkpoints and parents' results in memory, in place of the engine."""

    parents: dict[str, Any] = field(default_factory=dict)
    checkpoints: dict[uuid.UUID, Any] = field(default_factory=dict)

    async def parent_results(self, job_id: uuid.UUID) -> list[dict[str, Any]]:
        return [{"id": uuid7(), "step": step, "job_type": step, "status": JobStatus.COMPLETED, "result": result}
                for step, result in self.parents.items()]  # fmt: skip

    async def checkpoint(self, job: JobRow, state: Any) -> bool:
        self.checkpoints[job.id] = state
        return True

    async def last_checkpoint(self, job_id: uuid.UUID) -> Any:
        return self.checkpoints.get(job_id)


def job_row(
    job_type: str, *, params: Mapping[str, Any] | None = None, source: tuple[str, str] | None = None, attempts: int = 1,
    max_retries: int = 3, timeout_ms: int = 300_000,
) -> JobRow:  # fmt: skip
    """A RUNNING job as a worker holds it, on ``source`` (bucket, key) when given."""
    now = datetime.now(UTC)
    bucket, key = source or (None, None)
    return JobRow(
        id=uuid7(), job_type=job_type, payload={"params": dict(params or {})}, status=JobStatus.RUNNING, priority=0,
        attempts=attempts, attempt_floor=0, max_retries=max_retries, timeout_ms=timeout_ms, run_at=now,
        lease_expires_at=None, worker_id=None, cancel_requested=False, pending_parents=0, result=None, errors=[],
        idempotency_key=None, pipeline=None, step=job_type, object_event_id=None, source_bucket=bucket,
        source_key=key, source_version=None, created_at=now, started_at=now, finished_at=None,
    )  # fmt: skip


def job_context(
    job_type: str, *, store: MemoryObjectStore | None = None, source: tuple[str, str] | None = None,
    params: Mapping[str, Any] | None = None, state: MemoryJobState | None = None, job: JobRow | None = None,
) -> JobContext:  # fmt: skip
    """The context a worker would give a handler of ``job_type``; call it inside a running event loop."""
    job = job or job_row(job_type, params=params, source=source)
    log = logging.LoggerAdapter(logging.getLogger(f"conveyor.job.{job_type}"), {"job_id": str(job.id)})
    return JobContext(job=job, engine=state or MemoryJobState(), s3=store or MemoryObjectStore(), log=log,
                      loop=asyncio.get_running_loop())  # fmt: skip
