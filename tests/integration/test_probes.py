"""Liveness and readiness probes: what an orchestrator reads to restart a process or send it no traffic."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import httpx

from conveyor.db.settings import PostgresSettings
from conveyor.pipeline.engine import Engine
from conveyor.pipeline.engine.settings import EngineSettings, RedisSettings
from conveyor.pipeline.lifecycle.probes import Probes
from tests.integration.api_server import free_port
from tests.integration.conftest import Workers, wait_until
from tests.integration.test_worker_processes import create


def probe(port: int, path: str) -> tuple[int, dict[str, Any]] | None:
    """The status and JSON a process's metrics server answers on ``path``, or None while it does not listen."""
    try:
        response = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=2)
    except httpx.HTTPError:
        return None
    return response.status_code, response.json()


async def answers(port: int, path: str, status: int, detail: str) -> bool:
    return await asyncio.to_thread(probe, port, path) == (status, {"status": "ok" if status == 200 else "failing",
                                                                   "detail": detail})  # fmt: skip


async def test_a_draining_worker_is_live_but_no_longer_ready(engine: Engine, workers: Workers, tmp_path: Path) -> None:
    port = free_port()
    await create(engine, 1, "test.sleep", seconds=60, log=str(tmp_path / "runs.log"))
    worker = workers.start("--concurrency", "1", CONVEYOR_METRICS__ENABLED="true", CONVEYOR_METRICS__PORT=str(port),
                           CONVEYOR_WORKER__SHUTDOWN_GRACE_SECONDS="6")  # fmt: skip
    await wait_until(lambda: answers(port, "/health/ready", 200, "ready"), within=30, what="the worker ready")
    assert await answers(port, "/health/live", 200, "live")

    worker.send_signal(signal.SIGTERM)  # its job runs for a minute: it drains for the whole grace
    await wait_until(lambda: answers(port, "/health/ready", 503, "stopping"), within=5, what="unready while draining")
    assert await answers(port, "/health/live", 200, "live"), "draining is not dead: no restart during the grace"
    assert worker.poll() is None
    assert await asyncio.to_thread(worker.wait, 30) == 0


async def test_readiness_follows_postgresql_and_liveness_follows_the_loop(database: PostgresSettings) -> None:
    now = [0.0]
    probes = Probes(live_within_seconds=30.0, clock=lambda: now[0])
    assert probes.readiness().detail == "starting" and probes.liveness().ok
    async with Engine.open(database, EngineSettings(), RedisSettings()) as engine:
        await probes.run_once(engine.ping)
    assert probes.readiness().ok

    # Nothing listens on this port: a pool that connects lazily opens, and every ping is refused.
    nowhere = database.model_copy(update={"port": free_port(), "pool_min_size": 0, "connect_timeout_seconds": 1.0})
    async with Engine.open(nowhere, EngineSettings(), RedisSettings()) as unreachable:
        await probes.run_once(unreachable.ping)
    result = probes.readiness()
    assert not result.ok and result.detail.startswith("PostgreSQL unreachable"), result
    assert probes.liveness().ok, "an outage of PostgreSQL is not a reason to restart the process"

    now[0] = 31.0  # the loop has not beaten for 31 s
    assert not probes.liveness().ok
    probes.stopping()
    assert probes.readiness().detail == "stopping"
