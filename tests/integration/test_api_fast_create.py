"""``POST /api/jobs``'s fast path: it creates what FastAPI's route creates, and hands FastAPI the rest whole."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

from conveyor.api.asgi import Receive, Scope, Send
from conveyor.api.fast_create import FastCreate, create_route
from conveyor.pipeline.engine import Engine
from tests.integration.api_server import ApiServer

#: A JSON media type FastAPI parses as JSON but the fast path leaves to it: the same request down FastAPI's path.
FASTAPI_JSON = "application/vnd.conveyor+json"


class Behind:
    """The app behind the fast path: records what reached it, and answers 299."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        self.bodies.append(message["body"])
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b""})


async def post(app: FastCreate, body: bytes, content_type: str = "application/json") -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
        return await client.post("/api/jobs", content=body, headers={"content-type": content_type})


async def test_a_well_formed_request_is_answered_without_fastapi(engine: Engine) -> None:
    behind = Behind()
    fast = FastCreate(behind, engine=engine, route=create_route())
    created = await post(fast, json.dumps({"jobType": "fast.x", "priority": 7, "payload": {"a": [1]}}).encode())
    assert created.status_code == 201 and behind.bodies == []
    assert created.headers["content-type"] == "application/json"
    body = created.json()
    assert body["success"] is True and body["message"] == "Job created successfully"
    job = await engine.get(uuid.UUID(body["jobId"]))
    assert (job.job_type, job.priority, job.payload) == ("fast.x", 7, {"a": [1]})


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'{"jobType": "x", "priority": "high"}', "application/json"),  # does not validate
        (b'{"jobType": ', "application/json"),  # not JSON
        (b'{"jobType": "\xff"}', "application/json"),  # not UTF-8
        (b"[]", "application/json"),  # not an object
        (b"[" * 100_000, "application/json"),  # nested deeper than Python's JSON parser goes
        (b'{"jobType": "x"}', FASTAPI_JSON),  # another media type
        (b'{"jobType": "x"}', "text/plain"),
    ],
)
async def test_anything_else_reaches_fastapi_with_its_body_whole(
    engine: Engine, body: bytes, content_type: str
) -> None:
    behind = Behind()
    answered = await post(FastCreate(behind, engine=engine, route=create_route()), body, content_type)
    assert answered.status_code == 299 and behind.bodies == [body]


async def test_domain_errors_answer_as_fastapi_answers_them(engine: Engine) -> None:
    behind = Behind()
    fast = FastCreate(behind, engine=engine, route=create_route())
    body = json.dumps({"jobType": "x", "dependsOn": [str(uuid.uuid4())]}).encode()
    missing = await post(fast, body)
    assert missing.status_code == 404 and missing.json()["detail"].startswith("dependsOn: ") and behind.bodies == []


def test_both_paths_give_the_same_answers_through_conveyor_api(api: ApiServer) -> None:
    """The same requests down the fast path and down FastAPI's route (a ``+json`` media type) answer alike."""
    requests: list[dict[str, Any]] = [
        {"jobType": "same", "payload": {"k": "v"}, "runAt": "2030-01-01T00:00:00+02:00", "idempotencyKey": "k1"},
        {"jobType": "same", "payload": {"k": "v"}, "runAt": "2030-01-01T00:00:00+02:00", "idempotencyKey": "k1"},
        {"jobType": "x", "dependsOn": [str(uuid.uuid4())]},
        {"jobType": "x", "concurrencyLimit": 3},
        {"jobType": "x", "priority": "high"},
        {"jobType": "x", "payload": {"nul": "\u0000"}},
    ]
    with api.client() as http:
        for request in requests:
            fast, routed = (http.post("/api/jobs", content=json.dumps(request), headers={"content-type": kind})
                            for kind in ("application/json", FASTAPI_JSON))  # fmt: skip
            assert fast.status_code == routed.status_code, request
            assert fast.headers["content-type"] == routed.headers["content-type"]
            if fast.status_code == 201:
                assert fast.json().keys() == routed.json().keys()
                assert fast.json()["message"] == routed.json()["message"]
            else:
                assert fast.json() == routed.json(), request
        lines = http.get("/metrics").text.splitlines()
    created = [line for line in lines if line.startswith("conveyor_http_requests_total{")
               and 'route="/api/jobs"' in line and 'method="POST"' in line and 'code="201"' in line]  # fmt: skip
    assert created and float(created[0].rsplit(" ", 1)[1]) == 4, "both paths are counted under the route's template"
