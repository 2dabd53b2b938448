"""Failure paths through a real `conveyor worker` process: what each handler outcome does to its job."""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from minio import Minio

from conveyor.db.records import JobRow, JobStatus
from conveyor.pipeline.engine import Engine, JobSpec, SourceObject
from tests.integration.conftest import Workers, put_bytes, wait_until

RETRY = {"CONVEYOR_ENGINE__RETRY__DEFAULT__BASE_SECONDS": "0.5", "CONVEYOR_ENGINE__RETRY__DEFAULT__JITTER": "0"}


async def one(engine: Engine, job_type: str, *, source: SourceObject | None = None, max_retries: int = 3,
              timeout_ms: int = 60_000, **params: Any) -> uuid.UUID:  # fmt: skip
    spec = JobSpec(job_type=job_type, payload={"params": params}, max_retries=max_retries, timeout_ms=timeout_ms)
    return await engine.create(spec, source=source)


def settled(engine: Engine, job_id: uuid.UUID, *statuses: JobStatus) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return (await engine.get(job_id)).status in statuses

    return check


def runs(log: Path, job_id: uuid.UUID) -> list[tuple[int, int, str, float]]:
    """(attempt, pid, event, time) of every line the test handler logged for ``job_id``."""
    lines = [line.split() for line in log.read_text().splitlines()] if log.exists() else []
    return [(int(a), int(p), e, float(t)) for j, a, p, e, t in lines if j == str(job_id)]


def at(entry: dict[str, Any]) -> float:
    return datetime.fromisoformat(entry["at"]).timestamp()


async def test_an_exception_is_retried_with_backoff_until_it_succeeds(
    engine: Engine, workers: Workers, tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    job_id = await one(engine, "test.flaky", succeed_on=3, log=str(log))
    workers.start(**RETRY)
    await wait_until(settled(engine, job_id, JobStatus.COMPLETED), within=30, what="the flaky job to succeed")
    job = await engine.get(job_id)
    assert job.attempts == 3 and job.result == {"attempt": 3}
    assert [e["kind"] for e in job.errors] == ["error", "error"]
    assert "RuntimeError: flaky failure on attempt 1" in job.errors[0]["message"]
    starts = [t for _, _, event, t in runs(log, job_id) if event == "start"]
    assert starts[1] - at(job.errors[0]) >= 0.5 and starts[2] - at(job.errors[1]) >= 1.0, "0.5 s, then 1 s"


async def test_a_handler_past_its_timeout_is_stopped_and_retried_then_fails(
    engine: Engine, workers: Workers, tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    job_id = await one(engine, "test.sleep", seconds=30, timeout_ms=500, max_retries=1, log=str(log))
    workers.start(**RETRY)
    await wait_until(settled(engine, job_id, JobStatus.FAILED), within=30, what="the job to time out twice")
    job = await engine.get(job_id)
    assert job.attempts == 2 and [e["kind"] for e in job.errors] == ["timeout", "timeout"]
    assert "timed out after 0.5s" in job.errors[0]["message"]
    assert [event for _, _, event, _ in runs(log, job_id)] == ["start", "start"], "never ran to its end"


async def test_retry_later_snoozes_without_spending_an_attempt(
    engine: Engine, workers: Workers, tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    job_id = await one(engine, "test.later", delay=1.5, max_retries=0, log=str(log))
    workers.start()
    await wait_until(settled(engine, job_id, JobStatus.COMPLETED), within=30, what="the snoozed job to complete")
    job = await engine.get(job_id)
    assert job.attempts == 1 and job.errors == [], "a snooze is not a failure and spends no attempt"
    starts = [t for _, _, event, t in runs(log, job_id) if event == "start"]
    assert len(starts) == 2 and starts[1] - starts[0] >= 1.5


async def test_a_permanent_failure_is_not_retried(engine: Engine, workers: Workers, tmp_path: Path) -> None:
    log = tmp_path / "runs.log"
    job_id = await one(engine, "test.permanent", max_retries=5, log=str(log))
    workers.start()
    await wait_until(settled(engine, job_id, JobStatus.FAILED), within=30, what="the job to fail")
    job = await engine.get(job_id)
    assert job.attempts == 1 and job.errors[0]["kind"] == "permanent"
    assert job.errors[0]["message"] == "this input can never work"
    assert len(runs(log, job_id)) == 1


async def test_cancelling_a_running_handler_stops_it(engine: Engine, workers: Workers, tmp_path: Path) -> None:
    log = tmp_path / "runs.log"
    job_id = await one(engine, "test.sleep", seconds=60, log=str(log))
    workers.start()
    await wait_until(settled(engine, job_id, JobStatus.RUNNING), within=20, what="the job to run")
    assert await engine.cancel(job_id, reason="the operator changed her mind") is JobStatus.RUNNING, "asked to stop"
    await wait_until(settled(engine, job_id, JobStatus.CANCELLED), within=10, what="the worker to stop it")
    job = await engine.get(job_id)
    assert job.attempts == 1 and job.errors[-1]["kind"] == "cancelled"
    assert job.errors[-1]["message"] == "the operator changed her mind (while running)", "the request's reason"
    assert [event for _, _, event, _ in runs(log, job_id)] == ["start"], "stopped mid-run, never finished"


async def test_a_checkpointed_job_resumes_where_it_was_after_its_worker_is_killed_mid_file(
    engine: Engine, workers: Workers, tmp_path: Path, s3: Minio, scratch_bucket: str
) -> None:
    log, key = tmp_path / "runs.log", f"resume/{uuid.uuid4().hex}.txt"
    body = b"".join(b"line %03d\n" % n for n in range(40))
    await put_bytes(s3, scratch_bucket, key, body)
    job_id = await one(engine, "test.slow_lines", source=SourceObject(scratch_bucket, key), delay=0.1, every=5,
                       log=str(log))  # fmt: skip
    doomed = workers.start()

    async def checkpointed() -> bool:
        state = await engine.last_checkpoint(job_id)
        return bool(state) and state["line"] >= 10

    await wait_until(checkpointed, within=30, what="a checkpoint past line 10")
    os.kill(doomed.pid, signal.SIGKILL)
    killed_at = await engine.last_checkpoint(job_id)
    survivor = workers.start()
    await wait_until(settled(engine, job_id, JobStatus.COMPLETED), within=60, what="the job resumed and done")

    job: JobRow = await engine.get(job_id)
    assert job.result["lines"] == 40, "every line counted once"
    assert job.result["resumed_from_byte"] >= killed_at["offset"] > 0, "the second attempt started mid-file"
    assert job.attempts == 2 and [e["kind"] for e in job.errors] == ["worker_lost"]
    pids = [pid for _, pid, event, _ in runs(log, job_id) if event == "start"]
    assert pids == [doomed.pid, survivor.pid]
