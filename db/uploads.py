"""The ``uploads`` table: the latest write of each object version conveyor has recorded."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from conveyor.db.connection import Connection, translate_errors
from conveyor.db.records import ListedObject, NewUpload, ObjectVersion, RecordedUpload, Removal
from conveyor.db.sql import QUERIES


async def record_many(
    conn: Connection, uploads: Sequence[NewUpload], *, tolerance_seconds: float
) -> set[ObjectVersion]:
    """Record ``uploads`` (at most one per object version); the object versions recorded as new uploads."""
    documents = [
        {"bucket": u.bucket, "object_key": u.key, "version_id": u.version_id, "etag": u.etag, "size_bytes": u.size,
         "modified_at": u.modified_at, "event_id": u.event_id, "origin": u.origin.value, "pipelines": u.pipelines}
        for u in uploads
    ]  # fmt: skip
    with translate_errors():
        rows = await conn.fetch(QUERIES["upload_record_many"], documents, tolerance_seconds)
    return {(r["bucket"], r["object_key"], r["version_id"]) for r in rows}


async def remove_many(conn: Connection, removals: Sequence[Removal]) -> set[ObjectVersion]:
    """Mark removed object versions (tombstones for unknown ones); those whose recorded state changed."""
    documents = [
        {"bucket": r.bucket, "object_key": r.key, "version_id": r.version_id, "removed_at": r.removed_at}
        for r in removals
        if not r.any_version  # a delete marker hides versions; each one still exists and stays recorded
    ]
    if not documents:
        return set()
    with translate_errors():
        rows = await conn.fetch(QUERIES["upload_remove_many"], documents)
    return {(r["bucket"], r["object_key"], r["version_id"]) for r in rows}


async def for_listing(
    conn: Connection, bucket: str, listed: Sequence[ListedObject], *, tolerance_seconds: float
) -> list[RecordedUpload]:
    """What is recorded of each listed object, in the listing's order (one statement for the page)."""
    documents = [
        {"i": i, "object_key": o.key, "version_id": o.version_id, "etag": o.etag, "modified_at": o.modified_at}
        for i, o in enumerate(listed)
    ]
    with translate_errors():
        rows = await conn.fetch(QUERIES["uploads_for_listing"], bucket, documents, tolerance_seconds)
    return [
        RecordedUpload(is_new=r["is_new"], pipelines=list(r["pipelines"]), event_name=r["event_name"],
                       content_type=r["content_type"], user_metadata=r["user_metadata"] or {})
        for r in rows
    ]  # fmt: skip


async def add_pipelines(
    conn: Connection, bucket: str, wanted: Sequence[tuple[str, str, list[str]]]
) -> dict[ObjectVersion, tuple[int | None, list[str]]]:
    """Add pipelines to recorded uploads ((key, version id, pipelines) each); per upload changed, its
    event id and the pipelines actually added (none already there)."""
    documents = [{"object_key": key, "version_id": version, "pipelines": names} for key, version, names in wanted]
    with translate_errors():
        rows = await conn.fetch(QUERIES["upload_add_pipelines"], bucket, documents)
    return {(bucket, r["object_key"], r["version_id"]): (r["event_id"], list(r["added"])) for r in rows}


async def get(conn: Connection, bucket: str, key: str, version_id: str = "") -> dict[str, object] | None:
    with translate_errors():
        row = await conn.fetchrow(QUERIES["upload_get"], bucket, key, version_id)
    return None if row is None else dict(row)


async def prune_removed(conn: Connection, *, before: datetime, limit: int) -> int:
    """Delete up to ``limit`` tombstones of objects removed before ``before``."""
    with translate_errors():
        status = await conn.execute(QUERIES["uploads_prune_removed"], before, limit)
    return int(status.split()[-1])
