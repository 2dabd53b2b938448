"""The bare endpoint bench/api.py measures conveyor's HTTP API against: a raw ASGI app under uvicorn,
one statement per request on an asyncpg pool, no framework, no validation, no authentication.

``uvicorn bench.bare_api:app`` with ``BENCH_DSN`` naming the database.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from conveyor.db.sql import parse
from conveyor.pipeline.engine.ids import uuid7

SQL = parse((Path(__file__).parent / "bare.sql").read_text(), origin="bench/bare.sql")
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
WORKER = uuid.uuid4()
_pool: asyncpg.Pool | None = None


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    status, answer = await _route(scope["path"], body)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(answer)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": answer})


async def _route(path: str, body: bytes) -> tuple[int, bytes]:
    assert _pool is not None
    async with _pool.acquire() as conn:
        if path == "/jobs":
            document = orjson.loads(body)
            new_id = uuid7()
            payload = orjson.dumps(document["payload"]).decode()
            await conn.execute(SQL["bare_insert_job"], new_id, document["jobType"], payload)
            return 201, orjson.dumps({"jobId": str(new_id)})
        if path == "/acquire":
            rows = await conn.fetch(SQL["bare_claim"], WORKER, 1)
            if not rows:
                return 204, b""
            return 200, orjson.dumps({"id": str(rows[0]["id"]), "attempts": rows[0]["attempts"]})
        if path.startswith("/complete/"):
            job_id, attempts = path.removeprefix("/complete/").split("/")
            await conn.execute(SQL["bare_complete"], [uuid.UUID(job_id)], [int(attempts)])
            return 200, b'{"status":"COMPLETED"}'
    return 404, b"{}"


async def _lifespan(receive: Receive, send: Send) -> None:
    global _pool
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            _pool = await asyncpg.create_pool(os.environ["BENCH_DSN"], min_size=4, max_size=10)
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            if _pool is not None:
                await _pool.close()
            await send({"type": "lifespan.shutdown.complete"})
            return
