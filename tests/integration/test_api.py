"""The HTTP API as its existing clients use it: the seed's walkthrough, auth, limits, HTTP workers."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from conveyor.db.settings import PostgresSettings
from conveyor.settings import Settings
from tests.integration.api_server import READ_ONLY, ApiServer


def test_the_seed_walkthrough(api: ApiServer) -> None:
    with api.client() as http:
        created = http.post("/api/jobs", json={"jobType": "email.send", "payload": {"to": "a@example.com"},
                                               "priority": 5, "maxRetries": 1, "timeoutMs": 30000})  # fmt: skip
        assert created.status_code == 201
        body = created.json()
        assert body["success"] is True and body["message"] == "Job created successfully"
        job_id = body["jobId"]

        job = http.get(f"/api/jobs/{job_id}").json()
        assert (job["jobType"], job["status"], job["priority"], job["payload"]) == (
            "email.send", "PENDING", 5, {"to": "a@example.com"}
        )  # fmt: skip

        worker = http.post("/api/workers", json={"workerName": "mailer-1", "workerType": "node",
                                                 "capabilities": ["email.send"], "maxConcurrentJobs": 2})  # fmt: skip
        assert worker.status_code == 201
        worker_id = worker.json()["workerId"]

        acquired = http.post("/api/jobs/acquire", json={"workerId": worker_id, "jobTypes": ["email.send"]})
        assert acquired.status_code == 200 and acquired.json()["jobId"] == job_id
        assert acquired.json()["status"] == "RUNNING" and acquired.json()["workerId"] == worker_id

        beat = http.post(f"/api/workers/{worker_id}/heartbeat")
        assert beat.status_code == 200 and beat.json()["cancelRequested"] == []

        done = http.post(f"/api/jobs/{job_id}/complete", json={"result": {"sent": True}, "workerId": worker_id})
        assert done.json() == {"success": True, "jobId": job_id, "status": "COMPLETED"}
        assert http.get(f"/api/jobs/{job_id}").json()["result"] == {"sent": True}
        assert http.post(f"/api/jobs/{job_id}/complete", json={"result": {}}).status_code == 409

        second = http.post("/api/jobs", json={"jobType": "email.send", "maxRetries": 0}).json()["jobId"]
        http.post("/api/jobs/acquire", json={"workerId": worker_id})
        stranger = http.post(f"/api/jobs/{second}/complete", json={"result": {}, "workerId": str(uuid.uuid4())})
        assert stranger.status_code == 409 and "not RUNNING for that worker" in stranger.json()["detail"]
        assert http.get(f"/api/jobs/{second}").json()["status"] == "RUNNING"
        assert http.post(f"/api/jobs/{uuid.uuid4()}/complete", json={"result": {}}).status_code == 404
        failed = http.post(f"/api/jobs/{second}/fail", json={"error": {"message": "SMTP 550", "code": 550}})
        assert failed.json()["status"] == "FAILED"
        errors = http.get(f"/api/jobs/{second}").json()["errors"]
        assert errors[0]["message"] == "SMTP 550" and errors[0]["details"]["code"] == 550

        assert http.post("/api/jobs/acquire", json={"workerId": worker_id}).status_code == 204
        health = http.get(f"/api/workers/{worker_id}/health").json()
        assert health["worker"]["workerName"] == "mailer-1" and health["worker"]["jobsInFlight"] == 0
        assert [w["workerId"] for w in http.get("/api/workers").json()] == [worker_id]

    status = httpx.get(f"{api.url}/health").json()
    assert status["status"] == "healthy"
    assert set(status["services"]) == {"postgres", "redis", "kafka", "minio"}


def test_auth_limits_validation_and_unknown_routes(api: ApiServer) -> None:
    with api.client(token=None) as anonymous, api.client(READ_ONLY) as reader, api.client() as writer:
        assert anonymous.get("/api/jobs").status_code == 401
        assert anonymous.get("/health").status_code == 200 and anonymous.get("/metrics").status_code == 200
        assert reader.get("/api/jobs").status_code == 200
        assert reader.post("/api/jobs", json={"jobType": "x"}).status_code == 403
        with api.client("wrong") as stranger:
            assert stranger.get("/api/jobs").status_code == 401

        invalid = writer.post("/api/jobs", json={"jobType": "x", "priority": "high"})
        assert invalid.status_code == 422
        assert any(e["loc"][-1] == "priority" for e in invalid.json()["detail"])
        assert writer.post("/api/jobs", json={"payload": {}}).status_code == 422
        assert writer.post("/api/jobs", json={"jobType": "x", "payload": {"blob": "x" * 70_000}}).status_code == 413
        assert writer.get("/api/nope").status_code == 404
        assert writer.get(f"/api/jobs/{uuid.uuid4()}").status_code == 404
        assert writer.get("/api/jobs/not-a-uuid").status_code == 422
        missing_parent = writer.post("/api/jobs", json={"jobType": "x", "dependsOn": [str(uuid.uuid4())]})
        assert missing_parent.status_code == 404 and "dependsOn" in missing_parent.json()["detail"]
        odd_offset = writer.post("/api/jobs", json={"jobType": "x", "runAt": "5413-09-16T02:12:53+20:05"})
        assert odd_offset.status_code == 201, "any offset Python parses is stored, converted to UTC"
        job = writer.post("/api/jobs", json={"jobType": "x"}).json()["jobId"]
        assert writer.post(f"/api/jobs/{job}/retry").status_code == 409
        assert writer.post(f"/api/jobs/{job}/cancel").json()["status"] == "CANCELLED"
        assert writer.post(f"/api/jobs/{job}/retry").json()["status"] == "PENDING"


def test_list_filters_and_keyset_pages(api: ApiServer) -> None:
    with api.client() as http:
        ids = [http.post("/api/jobs", json={"jobType": "t" if i % 2 else "u"}).json()["jobId"] for i in range(7)]
        page1 = http.get("/api/jobs", params={"jobType": "t", "limit": 2}).json()
        page2 = http.get("/api/jobs", params={"jobType": "t", "limit": 2, "before": page1["nextBefore"]}).json()
        seen = [j["jobId"] for j in page1["jobs"] + page2["jobs"]]
        assert seen == [ids[5], ids[3], ids[1]] and page2["nextBefore"] is None
        assert len(http.get("/api/jobs", params={"status": "PENDING"}).json()["jobs"]) == 7


def test_acquire_long_polls_until_a_job_is_created(api: ApiServer) -> None:
    with api.client() as http:
        worker = http.post("/api/workers", json={"workerName": "poller"}).json()["workerId"]
        results: dict[str, Any] = {}

        def poll() -> None:
            started = time.monotonic()
            response = http.post("/api/jobs/acquire", json={"workerId": worker, "timeoutSeconds": 10})
            results.update(status=response.status_code, waited=time.monotonic() - started)

        poller = threading.Thread(target=poll)
        poller.start()
        time.sleep(1.0)
        with api.client() as other:
            other.post("/api/jobs", json={"jobType": "late"})
        poller.join()
        assert results["status"] == 200 and 0.9 < results["waited"] < 3


def test_an_http_worker_and_a_python_worker_share_a_queue(
    api: ApiServer, settings: Settings, database: PostgresSettings
) -> None:
    from tests.integration.conftest import Workers

    python_workers = Workers(database)
    try:
        with api.client() as http:
            python_workers.start("--concurrency", "2")
            deadline = time.monotonic() + 30
            while not http.get("/api/workers").json() and time.monotonic() < deadline:
                time.sleep(0.1)  # the Python worker has registered: both kinds compete from the first job
            # Every job becomes ready at the same moment, so both kinds of worker compete for all of them; each
            # takes the Python worker 50 ms (two at a time), so neither kind can drain the queue alone in a blink.
            ready_at = (datetime.now(UTC) + timedelta(seconds=3)).isoformat()
            spec = {"jobType": "test.sleep", "runAt": ready_at, "payload": {"params": {"seconds": 0.05}}}
            ids = [http.post("/api/jobs", json=spec).json()["jobId"] for _ in range(200)]
            worker = http.post("/api/workers", json={"workerName": "http-worker", "capabilities": ["test.sleep"]})
            worker_id = worker.json()["workerId"]
            done_by_http, deadline = 0, time.monotonic() + 30
            # Like any worker it heartbeats (or the Python worker's rescuer would declare it lost after 3 s).
            while http.post(f"/api/workers/{worker_id}/heartbeat").status_code == 200 and time.monotonic() < deadline:
                job = http.post("/api/jobs/acquire", json={"workerId": worker_id, "jobTypes": ["test.sleep"],
                                                           "timeoutSeconds": 1})  # fmt: skip
                if job.status_code == 204:
                    if all(http.get(f"/api/jobs/{i}").json()["status"] == "COMPLETED" for i in ids):
                        break
                    continue
                assert http.post(f"/api/jobs/{job.json()['jobId']}/complete",
                                 json={"result": {"by": "http"}, "workerId": worker_id}).status_code == 200  # fmt: skip
                done_by_http += 1
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                statuses = [http.get(f"/api/jobs/{i}").json() for i in ids]
                if all(s["status"] == "COMPLETED" for s in statuses):
                    break
                time.sleep(0.2)
        by_http = [s for s in statuses if s["result"] == {"by": "http"}]
        assert all(s["status"] == "COMPLETED" for s in statuses)
        assert 0 < len(by_http) == done_by_http < 200, "both kinds of worker took jobs"
    finally:
        python_workers.stop_all()


def test_object_story_and_dead_letters(api: ApiServer, database: PostgresSettings) -> None:
    asyncio.run(_seed_object_and_letter(database))
    with api.client() as http:
        story = http.get("/api/objects/uploads/in box/a+b 100%.csv").json()
        assert [e["eventName"] for e in story["events"]] == ["s3:ObjectCreated:Put"]
        assert {j["step"] for j in story["jobs"]} == {"checksum", "inspect", "profile"}
        letters = http.get("/api/dlq").json()
        assert [(d["reason"], d["messageBytes"]) for d in letters] == [("unrouted", len(UNROUTED))]
        replay = http.post(f"/api/dlq/{letters[0]['id']}/replay").json()
        assert replay["success"] is True and replay["jobsCreated"] == 2
        assert http.post("/api/dlq/999999/replay").status_code == 404


UNROUTED = b""


async def _seed_object_and_letter(database: PostgresSettings) -> None:
    """One routed upload (with its jobs) and one dead letter, as the ingestor would have stored them."""
    global UNROUTED
    from conveyor.db import events as event_queries
    from conveyor.db.connection import connect
    from conveyor.db.records import NewDeadLetter
    from conveyor.ingest.events import parse_message
    from conveyor.ingest.routing import load_rules, route
    from conveyor.ingest.store import Positioned, store_events
    from conveyor.pipeline.engine import EngineTransaction
    from tests.events import minio_message

    conn = await connect(database)
    try:
        (event,) = parse_message(minio_message("uploads", "in box/a+b 100%.csv"), max_bytes=1 << 20)
        routed = route(event, load_rules(None), max_lineage_depth=3)
        async with conn.transaction():
            await store_events(EngineTransaction(conn, now=None), [Positioned(routed, 0, 1)], topic="t")
        UNROUTED = minio_message("uploads", "notes.bin")
        letter = NewDeadLetter(reason="unrouted", error="no pipeline matches", topic="t", partition=0, offset=2,
                               key=None, value=UNROUTED)  # fmt: skip
        await event_queries.insert_dead_letters(conn, [letter])
    finally:
        await conn.close()


def test_requests_are_counted_and_timed_by_route_template_method_and_code(api: ApiServer) -> None:
    """The API's request metrics, as Grafana's panels read them: a bounded route label, never a raw path."""
    with api.client() as http:
        job_id = http.post("/api/jobs", json={"jobType": "metrics.probe"}).json()["jobId"]
        assert http.get(f"/api/jobs/{job_id}").status_code == 200
        assert http.get(f"/api/jobs/{uuid.uuid4()}").status_code == 404
        assert http.get("/no/such/route").status_code == 404
        lines = http.get("/metrics").text.splitlines()

    def count(route: str, method: str, code: str) -> float:
        labels = f'code="{code}",method="{method}",route="{route}"'
        found = [line for line in lines if line.startswith("conveyor_http_requests_total{") and labels in line]
        return float(found[0].rsplit(" ", 1)[1]) if found else 0.0

    assert count("/api/jobs", "POST", "201") >= 1
    assert count("/api/jobs/{job_id}", "GET", "200") >= 1 and count("/api/jobs/{job_id}", "GET", "404") >= 1
    assert count("unmatched", "GET", "404") >= 1
    assert not any(str(job_id) in line for line in lines), "a raw path never becomes a label"
    assert any(line.startswith('conveyor_http_request_duration_seconds_count{route="/api/jobs"}') for line in lines)
