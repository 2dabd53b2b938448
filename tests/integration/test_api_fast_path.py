"""The seed verbs' fast path: it answers what FastAPI's routes answer, and hands FastAPI the rest whole."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from conveyor.api.asgi import Receive, Scope, Send
from conveyor.api.context import ApiContext
from conveyor.api.fast_path import FastPath, seed_routes
from conveyor.api.health import HealthMonitor
from conveyor.api.settings import ApiSettings
from conveyor.pipeline.engine import Engine
from conveyor.pipeline.engine.dag import JobSpec
from tests.integration.api_server import ApiServer

#: A JSON media type FastAPI parses as JSON but the fast path leaves to it: the same request down FastAPI's path.
FASTAPI_JSON = "application/vnd.conveyor+json"
WORKER = str(uuid.UUID(int=7))


class Behind:
    """The app behind the fast path: records what reached it, and answers 299."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        self.bodies.append(message["body"])
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def fast_path(engine: Engine, behind: Behind) -> FastPath:
    context = ApiContext(engine=engine, settings=ApiSettings(), registry=CollectorRegistry(),
                         health=HealthMonitor({}, interval_seconds=60))  # fmt: skip
    return FastPath(behind, context=context, routes=seed_routes())


async def post(
    app: FastPath, body: bytes, content_type: str = "application/json", path: str = "/api/jobs"
) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
        return await client.post(path, content=body, headers={"content-type": content_type})


async def test_a_well_formed_request_is_answered_without_fastapi(engine: Engine) -> None:
    behind = Behind()
    fast = fast_path(engine, behind)
    created = await post(fast, json.dumps({"jobType": "fast.x", "priority": 7, "payload": {"a": [1]}}).encode())
    assert created.status_code == 201 and behind.bodies == []
    assert created.headers["content-type"] == "application/json"
    body = created.json()
    assert body["success"] is True and body["message"] == "Job created successfully"
    job = await engine.get(uuid.UUID(body["jobId"]))
    assert (job.job_type, job.priority, job.payload) == ("fast.x", 7, {"a": [1]})


@pytest.mark.parametrize(
    ("path", "body", "content_type"),
    [
        ("/api/jobs", b'{"jobType": "x", "priority": "high"}', "application/json"),  # does not validate
        ("/api/jobs", b'{"jobType": ', "application/json"),  # not JSON
        ("/api/jobs", b'{"jobType": "\xff"}', "application/json"),  # not UTF-8
        ("/api/jobs", b"[]", "application/json"),  # not an object
        ("/api/jobs", b"[" * 100_000, "application/json"),  # nested deeper than Python's JSON parser goes
        ("/api/jobs", b'{"jobType": "x"}', FASTAPI_JSON),  # another media type
        ("/api/jobs", b'{"jobType": "x"}', "text/plain"),
        ("/api/jobs/acquire", b'{"workerId": "not-a-uuid"}', "application/json"),
        ("/api/jobs/acquire", b'{"workerId": "%s", "timeoutSeconds": 99}' % WORKER.encode(), "application/json"),
        (f"/api/jobs/{uuid.UUID(int=1)}/complete", b'{"workerId": 5}', "application/json"),
        ("/api/jobs/not-a-uuid/complete", b"{}", "application/json"),  # the path's job id does not parse
        (f"/api/jobs/{uuid.UUID(int=1)}/complete", b"{}", FASTAPI_JSON),
    ],
)
async def test_anything_else_reaches_fastapi_with_its_body_whole(
    engine: Engine, path: str, body: bytes, content_type: str
) -> None:
    behind = Behind()
    answered = await post(fast_path(engine, behind), body, content_type, path)
    assert answered.status_code == 299 and behind.bodies == [body]


async def test_acquire_and_complete_are_answered_without_fastapi(engine: Engine) -> None:
    behind = Behind()
    fast = fast_path(engine, behind)
    job_id = await engine.create(JobSpec(job_type="fast.cycle", payload={"n": 1}))
    acquire = json.dumps({"workerId": WORKER, "jobTypes": ["fast.cycle"]}).encode()
    acquired = await post(fast, acquire, path="/api/jobs/acquire")
    assert acquired.status_code == 200 and acquired.headers["content-type"] == "application/json"
    assert (acquired.json()["jobId"], acquired.json()["workerId"], acquired.json()["status"]) == (
        str(job_id), WORKER, "RUNNING"
    )  # fmt: skip
    assert (await post(fast, acquire, path="/api/jobs/acquire")).status_code == 204  # nothing else is ready
    complete = json.dumps({"workerId": WORKER, "result": {"ok": True}}).encode()
    completed = await post(fast, complete, path=f"/api/jobs/{job_id}/complete")
    assert completed.status_code == 200
    assert completed.json() == {"success": True, "jobId": str(job_id), "status": "COMPLETED"}
    assert (await engine.get(job_id)).result == {"ok": True}
    assert behind.bodies == []


async def test_refusals_answer_as_fastapi_answers_them(engine: Engine) -> None:
    """An ``HTTPException`` (409) by FastAPI's own handler, a domain error (404) by the problem table."""
    behind = Behind()
    fast = fast_path(engine, behind)
    job_id = await engine.create(JobSpec(job_type="fast.refused"))
    complete = json.dumps({"workerId": WORKER}).encode()
    not_running = await post(fast, complete, path=f"/api/jobs/{job_id}/complete")
    assert not_running.status_code == 409
    assert not_running.json() == {"detail": f"job {job_id} is PENDING, not RUNNING for that worker"}
    missing = await post(fast, complete, path=f"/api/jobs/{uuid.UUID(int=2)}/complete")
    assert missing.status_code == 404 and behind.bodies == []


async def test_domain_errors_answer_as_fastapi_answers_them(engine: Engine) -> None:
    behind = Behind()
    fast = fast_path(engine, behind)
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
    assert _posts_counted(lines, "/api/jobs", 201) == 4, "both paths are counted under the route's template"


def test_acquire_and_complete_answer_alike_down_both_paths(api: ApiServer) -> None:
    """Each step of a job's acquire-complete cycle, down the fast path for one job and FastAPI's route for
    another, answers alike (up to the job's own id); both are counted under the routes' templates."""
    with api.client() as http:

        def both(path_of: Any, body: dict[str, Any]) -> tuple[httpx.Response, httpx.Response]:
            fast, routed = (http.post(path_of(kind), content=json.dumps(body), headers={"content-type": kind})
                            for kind in ("application/json", FASTAPI_JSON))  # fmt: skip
            assert (fast.status_code, fast.headers.get("content-type")) == (
                routed.status_code, routed.headers.get("content-type")
            ), (fast.text, routed.text)  # fmt: skip
            return fast, routed

        for _ in range(2):
            assert http.post("/api/jobs", json={"jobType": "same.cycle", "payload": {"k": 1}}).status_code == 201
        acquire = {"workerId": WORKER, "jobTypes": ["same.cycle"]}
        fast, routed = both(lambda kind: "/api/jobs/acquire", acquire)
        ids = {"application/json": fast.json()["jobId"], FASTAPI_JSON: routed.json()["jobId"]}
        assert fast.status_code == 200 and _without_id(fast.json()) == _without_id(routed.json())
        nothing = both(lambda kind: "/api/jobs/acquire", acquire)
        assert [r.status_code for r in nothing] == [204, 204]
        for body in ({"workerId": WORKER, "result": {"rows": 3}}, {"workerId": WORKER}, {"workerId": "x"}):
            fast, routed = both(lambda kind: f"/api/jobs/{ids[kind]}/complete", body)
            assert fast.text.replace(ids["application/json"], "ID") == routed.text.replace(ids[FASTAPI_JSON], "ID")
        for path in (f"/api/jobs/{uuid.UUID(int=3)}/complete", "/api/jobs/not-a-uuid/complete"):
            fast, routed = both(lambda kind, path=path: path, {"workerId": WORKER})
            assert fast.status_code in {404, 422} and fast.json() == routed.json()
        lines = http.get("/metrics").text.splitlines()
    for route in ("/api/jobs/acquire", "/api/jobs/{job_id}/complete"):
        assert _posts_counted(lines, route, 200) == 2, route


def _without_id(job: dict[str, Any]) -> dict[str, Any]:
    """The job's body without what differs between two jobs made alike: the id and the times."""
    return {key: value for key, value in job.items() if key != "jobId" and not key.endswith("At")}


def _posts_counted(metrics: list[str], route: str, code: int) -> float | None:
    """``conveyor_http_requests_total`` of POSTs to ``route`` answered ``code``; None when no line counts them."""
    counted = [line for line in metrics if line.startswith("conveyor_http_requests_total{")
               and f'route="{route}"' in line and 'method="POST"' in line and f'code="{code}"' in line]  # fmt: skip
    return float(counted[0].rsplit(" ", 1)[1]) if counted else None
