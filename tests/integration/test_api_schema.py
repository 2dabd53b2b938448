"""Property-based: schemathesis generates requests from the OpenAPI schema; no 5xx, no schema violation."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings

from conveyor.settings import Settings
from tests.conftest import clone_template, drop_database
from tests.integration.api_server import TOKEN, api_server


@pytest.fixture(scope="module")
def api_schema(settings: Settings, template_db: str) -> Iterator[Any]:
    name = f"conveyor_schema_{uuid.uuid4().hex[:10]}"
    asyncio.run(clone_template(settings, name))
    try:
        with api_server(name) as server:
            yield schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    finally:
        asyncio.run(drop_database(settings, name))


def test_every_operation_conforms_to_its_schema(api_schema: Any) -> None:
    """Each operation: generated requests (valid and not) get no 5xx and responses match the schema."""
    failures = []
    for result in api_schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @hypothesis_settings(
            max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None, derandomize=True
        )
        def check(case: Any) -> None:
            if isinstance(case.body, dict) and isinstance(case.body.get("timeoutSeconds"), int | float):
                case.body["timeoutSeconds"] = min(case.body["timeoutSeconds"], 0.2)  # long-polls: keep the run short
            # Positive-data acceptance is excluded on purpose: JSON Schema cannot say "no NUL character
            # in any key or value of this object", and the API answers those with a 422 naming the field.
            case.call_and_validate(
                headers={"Authorization": f"Bearer {TOKEN}"},
                excluded_checks=[schemathesis.checks.positive_data_acceptance],
            )

        try:
            check()
        except Exception as exc:  # noqa: BLE001 - collected, then reported together
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)
