"""Flow limits through the HTTP API: keyed jobs, what holds a job back, and limits set, read and cleared."""

from __future__ import annotations

from tests.integration.api_server import READ_ONLY, ApiServer


def test_a_keyed_job_says_which_limit_holds_it_back(api: ApiServer) -> None:
    with api.client() as http:
        first = http.post("/api/jobs", json={"jobType": "ocr", "concurrencyKey": "tenant/a", "concurrencyLimit": 1})
        second = http.post("/api/jobs", json={"jobType": "ocr", "concurrencyKey": "tenant/a"})
        assert first.status_code == second.status_code == 201
        worker = http.post("/api/workers", json={"workerName": "w", "capabilities": ["ocr"]}).json()["workerId"]
        acquired = http.post("/api/jobs/acquire", json={"workerId": worker, "jobTypes": ["ocr"]})
        assert acquired.json()["jobId"] == first.json()["jobId"]
        assert acquired.json()["concurrencyKey"] == "tenant/a"
        held = http.get(f"/api/jobs/{second.json()['jobId']}").json()
        assert held["status"] == "PENDING" and held["heldBy"] == ["key 'tenant/a' runs 1 of at most 1"]
        again = http.post("/api/jobs/acquire", json={"workerId": worker, "jobTypes": ["ocr"]})
        assert again.status_code == 204, "the cap holds the second job back"
        (limit,) = http.get("/api/limits").json()
        assert (limit["scope"], limit["name"], limit["running"], limit["ready"], limit["setBy"]) == (
            "key", "tenant/a", 1, 1, "api"
        )  # fmt: skip


def test_limits_are_set_read_and_cleared_and_bad_ones_name_the_field(api: ApiServer) -> None:
    with api.client() as http, api.client(READ_ONLY) as reader:
        put = http.put("/api/limits/job_type/ocr", json={"maxRunning": 4, "ratePerSecond": 20})
        assert put.status_code == 200
        assert (put.json()["maxRunning"], put.json()["ratePerSecond"], put.json()["burst"]) == (4, 20.0, 20)
        assert http.put("/api/limits/key/uploads/tenant-a", json={"weight": 3}).json()["name"] == "uploads/tenant-a"
        assert [r["name"] for r in reader.get("/api/limits").json()] == ["uploads/tenant-a", "ocr"]
        assert reader.put("/api/limits/job_type/ocr", json={"maxRunning": 1}).status_code == 403
        assert reader.delete("/api/limits/job_type/ocr").status_code == 403
        for body, field in (({"maxRunning": 0}, "maxRunning"), ({"ratePerSecond": -1}, "ratePerSecond"),
                            ({"burst": 2}, "burst"), ({}, "maxRunning")):  # fmt: skip
            refused = http.put("/api/limits/job_type/ocr", json=body)
            assert refused.status_code == 422 and field in refused.text, (body, refused.text)
        assert http.put("/api/limits/tenant/x", json={"maxRunning": 1}).status_code == 422, "an unknown scope"
        bad_key = http.post("/api/jobs", json={"jobType": "t", "concurrencyLimit": 2})
        assert bad_key.status_code == 422 and "concurrencyKey" in bad_key.text
        assert http.post("/api/jobs", json={"jobType": "t", "concurrencyKey": "a\tb"}).status_code == 422
        assert http.delete("/api/limits/job_type/ocr").status_code == 204
        assert http.delete("/api/limits/job_type/ocr").status_code == 404
        assert [r["name"] for r in http.get("/api/limits").json()] == ["uploads/tenant-a"]
