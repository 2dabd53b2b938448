"""Who may do what: every write route refuses anonymous and read-only callers; /health and /metrics can be
protected; a process that would listen beyond loopback refuses to start with a published default secret."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator

import httpx
import pytest

from conveyor.db.errors import ConfigurationError
from conveyor.db.settings import PostgresSettings
from conveyor.settings import Settings, default_secrets_in_use, is_loopback, load, refuse_exposed_defaults
from tests.conftest import clone_template, drop_database
from tests.integration.api_server import READ_ONLY, TOKEN, ApiServer, api_server

WRITE_METHODS = {"post", "put", "patch", "delete"}
ANY_TOKEN = "A token from settings.api.tokens or settings.api.read_only_tokens"


@pytest.fixture(scope="module")
def protected(settings: Settings, template_db: str) -> Iterator[ApiServer]:
    """An API on a database of its own, with /health and /metrics behind the tokens too."""
    name = f"conveyor_access_{uuid.uuid4().hex[:8]}"
    asyncio.run(clone_template(settings, name))
    try:
        with api_server(name, CONVEYOR_API__PROTECT_HEALTH_AND_METRICS="true") as server:
            yield server
    finally:
        asyncio.run(drop_database(settings, name))


def write_routes(server: ApiServer) -> list[tuple[str, str]]:
    """(method, path) of every route that changes something, from the server's own OpenAPI schema."""
    schema = httpx.get(f"{server.url}/openapi.json", timeout=10).json()
    routes = []
    for template, operations in schema["paths"].items():
        path = re.sub(r"\{[^}]*[iI]d\}", lambda m: "1" if "letter" in m.group(0) else str(uuid.uuid4()), template)
        routes += [(method.upper(), path) for method in operations if method in WRITE_METHODS]
    return routes


def test_every_write_route_refuses_callers_without_a_token_or_with_a_read_only_one(protected: ApiServer) -> None:
    routes = write_routes(protected)
    assert len(routes) >= 9, routes  # jobs: create, acquire, complete, fail, cancel, retry; workers: 2; dlq replay
    with protected.client(None) as anonymous, protected.client(READ_ONLY) as reader:
        for method, path in routes:
            assert anonymous.request(method, path, json={}).status_code == 401, (method, path)
            assert reader.request(method, path, json={}).status_code == 403, (method, path)
        assert reader.get("/api/jobs").status_code == 200, "the read-only token still reads"


def test_the_schema_declares_the_bearer_scheme_on_every_guarded_route(protected: ApiServer) -> None:
    schema = httpx.get(f"{protected.url}/openapi.json", timeout=10).json()
    assert schema["components"]["securitySchemes"]["HTTPBearer"] == {
        "type": "http", "scheme": "bearer", "description": ANY_TOKEN,
    }  # fmt: skip
    for template, operations in schema["paths"].items():
        guarded = template.startswith("/api/") or template in ("/health", "/metrics")
        for method, operation in operations.items():
            assert (operation.get("security") == [{"HTTPBearer": []}]) == guarded, (method, template)
    with protected.client(None) as anonymous:
        refused = anonymous.get("/api/jobs")
        assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
        assert anonymous.get("/health/live").status_code == 200, "liveness answers without a token"


def test_health_and_metrics_can_be_protected(protected: ApiServer) -> None:
    with protected.client(None) as anonymous, protected.client(READ_ONLY) as reader, protected.client(TOKEN) as writer:
        for path in ("/health", "/metrics"):
            assert anonymous.get(path).status_code == 401, path
            assert reader.get(path).status_code in (200, 503), path
            assert writer.get(path).status_code in (200, 503), path


def test_loopback_addresses_are_told_apart() -> None:
    assert all(map(is_loopback, ["127.0.0.1", "127.9.9.9", "::1", "localhost"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "10.1.2.3", "api.example.com"]))


def test_published_defaults_are_refused_beyond_loopback_and_named(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = load()
    assert default_secrets_in_use(defaults) == [
        "CONVEYOR_API__TOKENS", "CONVEYOR_S3__SECRET_KEY", "CONVEYOR_POSTGRES__PASSWORD",
    ]  # fmt: skip
    refuse_exposed_defaults(defaults, "127.0.0.1", "conveyor api")  # loopback: the local stack's defaults are fine
    with pytest.raises(ConfigurationError, match="CONVEYOR_API__TOKENS, CONVEYOR_S3__SECRET_KEY"):
        refuse_exposed_defaults(defaults, "0.0.0.0", "conveyor api")
    monkeypatch.setenv("CONVEYOR_API__TOKENS", '["a-real-secret"]')
    monkeypatch.setenv("CONVEYOR_S3__SECRET_KEY", "another-secret")
    monkeypatch.setenv("CONVEYOR_POSTGRES__PASSWORD", "and-another")
    refuse_exposed_defaults(load(), "0.0.0.0", "conveyor api")


@pytest.mark.parametrize(("argv", "env"), [
    (["api", "--host", "0.0.0.0"], {}),
    (["worker", "--concurrency", "1"], {"CONVEYOR_METRICS__HOST": "0.0.0.0"}),
])  # fmt: skip
def test_a_process_that_would_listen_beyond_loopback_with_defaults_does_not_start(
    argv: list[str], env: dict[str, str], database: PostgresSettings
) -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    environment.update(env, CONVEYOR_POSTGRES__DATABASE=database.database)
    done = subprocess.run([sys.executable, "-m", "conveyor", *argv], env=environment, capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "would listen on 0.0.0.0" in done.stderr and "CONVEYOR_API__TOKENS" in done.stderr


def test_the_api_answers_liveness_without_a_token_even_when_health_is_protected(protected: ApiServer) -> None:
    response = httpx.get(f"{protected.url}/health/live", timeout=5)
    assert (response.status_code, response.json()) == (200, {"status": "ok", "detail": "live"})
    assert httpx.get(f"{protected.url}/health", timeout=5).status_code == 401
