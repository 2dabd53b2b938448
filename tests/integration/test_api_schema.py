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


def test_stateful_sequences_of_operations_keep_their_contracts(api_schema: Any) -> None:
    """Schemathesis chains operations with the links it infers from the schema (create a job, then read,
    fail, retry or cancel that very job; register a worker, then heartbeat it...): no 5xx, every response
    as its schema says."""
    base = api_schema.as_state_machine()
    assert base.bundles, "links between operations were inferred: there are sequences to run"

    class Authorized(base):  # type: ignore[misc, valid-type]
        def before_call(self, case: Any) -> None:
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {TOKEN}"}
            if isinstance(case.body, dict) and isinstance(case.body.get("timeoutSeconds"), int | float):
                case.body["timeoutSeconds"] = min(case.body["timeoutSeconds"], 0.2)

        def validate_response(self, response: Any, case: Any, additional_checks: Any = None, **kwargs: Any) -> None:
            # ignored_auth re-sends with broken credentials, which before_call would mend: tokens have their own
            # table-driven test (test_api_access); positive data: see the stateless test above.
            excluded = [schemathesis.checks.positive_data_acceptance, schemathesis.checks.ignored_auth]
            case.validate_response(response, excluded_checks=excluded)

    Authorized.run(settings=hypothesis_settings(max_examples=25, stateful_step_count=8, deadline=None,
                                                suppress_health_check=list(HealthCheck), database=None,
                                                derandomize=True))  # fmt: skip
