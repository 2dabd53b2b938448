"""The ``workers`` and ``worker_health_logs`` tables."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from conveyor.db.connection import Connection, translate_errors
from conveyor.db.records import Liveness, NewWorker, WorkerRow, WorkerStatus
from conveyor.db.sql import QUERIES


async def register(conn: Connection, worker: NewWorker) -> WorkerRow:
    with translate_errors():
        row = await conn.fetchrow(
            QUERIES["worker_register"],
            worker.id,
            worker.name,
            worker.worker_type,
            list(worker.capabilities),
            worker.max_concurrent_jobs,
            worker.host,
            worker.pid,
            worker.version,
        )
    assert row is not None
    return WorkerRow.from_record(row)


async def heartbeat(
    conn: Connection,
    worker_id: uuid.UUID,
    *,
    status: WorkerStatus = WorkerStatus.ACTIVE,
    completed: int = 0,
    failed: int = 0,
) -> bool:
    """Record that the worker is alive; False if it is unknown or was already declared STOPPED or LOST."""
    with translate_errors():
        return await conn.fetchval(QUERIES["worker_heartbeat"], worker_id, status, completed, failed) is not None


async def stop(conn: Connection, worker_id: uuid.UUID) -> bool:
    with translate_errors():
        return await conn.fetchval(QUERIES["worker_stop"], worker_id) is not None


async def mark_lost(conn: Connection, *, silent_for_seconds: float) -> list[uuid.UUID]:
    with translate_errors():
        return [r["id"] for r in await conn.fetch(QUERIES["worker_mark_lost"], silent_for_seconds)]


async def log_health(
    conn: Connection,
    worker_id: uuid.UUID,
    *,
    status: WorkerStatus,
    jobs_in_flight: int,
    rss_bytes: int | None,
    cpu_percent: float | None,
) -> None:
    with translate_errors():
        await conn.execute(QUERIES["worker_health_log"], worker_id, status, jobs_in_flight, rss_bytes, cpu_percent)


async def get(conn: Connection, worker_id: uuid.UUID) -> WorkerRow | None:
    with translate_errors():
        row = await conn.fetchrow(QUERIES["worker_get"], worker_id)
    return None if row is None else WorkerRow.from_record(row)


async def list_workers(conn: Connection, *, include_stopped: bool = False) -> list[WorkerRow]:
    with translate_errors():
        return [WorkerRow.from_record(r) for r in await conn.fetch(QUERIES["worker_list"], include_stopped)]


async def recent_health(conn: Connection, worker_id: uuid.UUID, *, limit: int = 20) -> list[dict[str, Any]]:
    with translate_errors():
        return [dict(r) for r in await conn.fetch(QUERIES["worker_health_recent"], worker_id, limit)]


async def prune_health(conn: Connection, *, before: datetime, limit: int) -> int:
    with translate_errors():
        status = await conn.execute(QUERIES["worker_health_prune"], before, limit)
    return int(status.split()[-1])


async def prune(conn: Connection, *, before: datetime, limit: int) -> int:
    with translate_errors():
        status = await conn.execute(QUERIES["worker_prune"], before, limit)
    return int(status.split()[-1])


async def liveness(conn: Connection) -> Liveness:
    """How many workers are live, and the age of the stalest heartbeat among them."""
    with translate_errors():
        row = await conn.fetchrow(QUERIES["worker_liveness"])
    assert row is not None
    return Liveness(int(row["alive"]), float(row["oldest_heartbeat_seconds"]))
