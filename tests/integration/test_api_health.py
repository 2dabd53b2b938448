"""/health against the real services: a side task checks them on clients it keeps, and /health reads it."""

from __future__ import annotations

import httpx

from conveyor.api.health import HealthMonitor, StandardChecks
from conveyor.db.settings import PostgresSettings
from conveyor.pipeline.engine import Engine
from conveyor.settings import Settings
from tests.integration.api_server import api_server, free_port


async def test_the_checks_keep_their_clients(settings: Settings, engine: Engine) -> None:
    checks = StandardChecks(engine, settings.redis, settings.kafka, settings.s3)
    monitor = HealthMonitor(checks.checks(), interval_seconds=1)
    try:
        await monitor.run_once()
        admin = checks._admin
        await monitor.run_once()
        body, code = monitor.report()
        assert (body.status, code) == ("healthy", 200), body
        assert admin is not None and checks._admin is admin, "one Kafka admin client for every round"
    finally:
        await checks.aclose()


def test_a_service_down_shows_from_the_background_checks(database: PostgresSettings) -> None:
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    with api_server(database.database, CONVEYOR_REDIS__URL=nowhere,
                    CONVEYOR_API__HEALTH_CHECK_INTERVAL_SECONDS="0.2") as api:  # fmt: skip
        response = httpx.get(f"{api.url}/health", timeout=5)
        body = response.json()
    assert response.status_code == 200 and body["status"] == "degraded", body
    assert body["services"]["redis"]["status"] == "down"
    assert {name for name, s in body["services"].items() if s["status"] == "up"} == {"postgres", "kafka", "minio"}
