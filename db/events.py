"""The ``object_events`` and ``dead_letters`` tables."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from conveyor.db.connection import Connection, translate_errors
from conveyor.db.records import DeadLetterRow, EventJobs, Identity, NewDeadLetter, NewObjectEvent
from conveyor.db.sql import QUERIES


async def insert_many(conn: Connection, events: Sequence[NewObjectEvent], *, topic: str) -> dict[Identity, int]:
    """Record ``events``; return {identity: id} for those that were new (duplicates are skipped)."""
    documents = [
        {
            "bucket": e.bucket, "object_key": e.key, "version_id": e.version_id, "event_name": e.event_name,
            "sequencer": e.sequencer, "etag": e.etag, "size_bytes": e.size, "content_type": e.content_type,
            "user_metadata": e.user_metadata, "event_time": e.event_time, "source_partition": e.partition,
            "source_offset": e.offset, "origin": e.origin.value, "modified_at": e.modified_at,
        }
        for e in events
    ]  # fmt: skip
    with translate_errors():
        rows = await conn.fetch(QUERIES["object_event_insert_many"], documents, topic)
    return {(r["bucket"], r["object_key"], r["version_id"], r["event_name"], r["sequencer"]): r["id"] for r in rows}


async def for_key(conn: Connection, bucket: str, key: str) -> list[dict[str, Any]]:
    with translate_errors():
        return [dict(r) for r in await conn.fetch(QUERIES["object_events_for_key"], bucket, key)]


async def insert_dead_letters(conn: Connection, letters: Sequence[NewDeadLetter]) -> list[int]:
    """Keep ``letters`` and the headers they came with; those already kept (same topic, partition, offset)
    are skipped."""
    d = letters
    with translate_errors():
        rows = await conn.fetch(
            QUERIES["dead_letter_insert_many"],
            [x.reason for x in d], [x.error for x in d], [x.topic for x in d], [x.partition for x in d],
            [x.offset for x in d], [x.key for x in d], [x.value for x in d],
        )  # fmt: skip
        by_source = {(x.topic, x.partition, x.offset): x.headers for x in d if x.headers}
        documents = [{"letter_id": r["id"], "headers": _header_pairs(by_source[source])}
                     for r in rows if (source := tuple(r)[1:]) in by_source]  # fmt: skip
        if documents:
            await conn.execute(QUERIES["dead_letter_headers_insert"], documents)
    return [r["id"] for r in rows]


def _header_pairs(headers: Sequence[tuple[str, bytes]]) -> list[list[str]]:
    return [[_header_text(name.encode()), _header_text(value)] for name, value in headers]


def _header_text(value: bytes) -> str:
    """A header's name or value as text jsonb holds: bytes that are not UTF-8, and NUL, as \\xNN escapes."""
    return value.decode("utf-8", "backslashreplace").replace("\x00", "\\x00")


async def dead_letter_headers(conn: Connection, letter_ids: Sequence[int]) -> dict[int, list[tuple[str, str]]]:
    """The kept headers of ``letter_ids`` ((name, value) pairs); a letter that came with none is left out."""
    with translate_errors():
        rows = await conn.fetch(QUERIES["dead_letter_headers_of"], list(letter_ids))
    return {r["letter_id"]: [(name, value) for name, value in r["headers"]] for r in rows}


async def list_dead_letters(
    conn: Connection, *, include_replayed: bool = False, before: int | None = None, limit: int = 50
) -> list[DeadLetterRow]:
    with translate_errors():
        rows = await conn.fetch(QUERIES["dead_letter_list"], include_replayed, before, limit)
    return [DeadLetterRow.from_record(r) for r in rows]


async def lock_dead_letter(conn: Connection, letter_id: int) -> DeadLetterRow | None:
    with translate_errors():
        row = await conn.fetchrow(QUERIES["dead_letter_lock"], letter_id)
    return None if row is None else DeadLetterRow.from_record(row)


async def mark_replayed(conn: Connection, letter_id: int, *, error: str | None) -> DeadLetterRow:
    with translate_errors():
        row = await conn.fetchrow(QUERIES["dead_letter_replayed"], letter_id, error)
    assert row is not None
    return DeadLetterRow.from_record(row)


async def job_counts(conn: Connection) -> list[EventJobs]:
    """Every recorded event with the number of jobs it started."""
    with translate_errors():
        rows = await conn.fetch(QUERIES["object_event_job_counts"])
    return [EventJobs(r["id"], r["bucket"], r["object_key"], r["sequencer"], r["event_name"], r["jobs"]) for r in rows]


async def open_dead_letters(conn: Connection) -> int:
    with translate_errors():
        count: int = await conn.fetchval(QUERIES["dead_letter_open_count"])
    return count


async def prune(conn: Connection, *, before: datetime, limit: int) -> int:
    """Delete up to ``limit`` events received before ``before`` that no job refers to; the count deleted."""
    with translate_errors():
        status = await conn.execute(QUERIES["object_events_prune"], before, limit)
    return int(status.split()[-1])
