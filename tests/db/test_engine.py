"""The engine's verbs against real PostgreSQL: claim order, retries, timeouts, leases, rescue, cancel."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

import pytest

from conveyor.db.records import JobStatus
from conveyor.pipeline.engine import Engine, Failure, FailureKind
from conveyor.pipeline.engine.dag import JobSpec
from conveyor.pipeline.engine.errors import JobConflict, JobNotFound
from conveyor.pipeline.maintenance.rescuer import Rescuer
from tests.db.conftest import FakeClock

WORKER = uuid.uuid4()


async def test_claim_honours_priority_across_types_then_run_at_then_age(engine: Engine, clock: FakeClock) -> None:
    low = await engine.create(JobSpec(job_type="a", priority=0))
    high_b = await engine.create(JobSpec(job_type="b", priority=10))
    later = await engine.create(JobSpec(job_type="a", priority=5, run_at=clock.now + timedelta(seconds=1)))
    sooner = await engine.create(JobSpec(job_type="b", priority=5, run_at=clock.now - timedelta(seconds=1)))
    older_same = await engine.create(JobSpec(job_type="a", priority=5, run_at=clock.now - timedelta(seconds=1)))

    clock.advance(2)
    claimed = [(await engine.claim(WORKER, limit=1))[0].id for _ in range(5)]

    # sooner and older_same tie on priority and run_at: age (id order) decides.
    assert claimed == [high_b, sooner, older_same, later, low]


async def test_claim_filters_by_type_and_respects_run_at(engine: Engine, clock: FakeClock) -> None:
    await engine.create(JobSpec(job_type="other"))
    scheduled = await engine.create(JobSpec(job_type="wanted", run_at=clock.now + timedelta(minutes=5)))
    assert await engine.claim(WORKER, job_types=["wanted"], limit=10) == []
    clock.advance(300)
    (job,) = await engine.claim(WORKER, job_types=["wanted"], limit=10)
    assert job.id == scheduled and job.status is JobStatus.RUNNING and job.attempts == 1
    assert job.worker_id == WORKER
    assert job.lease_expires_at == clock.now + timedelta(milliseconds=job.timeout_ms, seconds=5)


async def test_claim_in_batches(engine: Engine) -> None:
    for i in range(7):
        await engine.create(JobSpec(job_type="t", payload={"i": i}))
    assert len(await engine.claim(WORKER, limit=5)) == 5
    assert len(await engine.claim(WORKER, limit=5)) == 2
    assert await engine.claim(WORKER, limit=5) == []


async def test_idempotency_key_dedupes(engine: Engine) -> None:
    first = await engine.create(JobSpec(job_type="t", idempotency_key="upload-1"))
    again = await engine.create(JobSpec(job_type="t", idempotency_key="upload-1", payload={"other": True}))
    assert again == first
    assert len(await engine.claim(WORKER, limit=10)) == 1


async def test_complete_stores_the_result(engine: Engine) -> None:
    await engine.create(JobSpec(job_type="t"))
    (job,) = await engine.claim(WORKER)
    assert await engine.complete(job, {"sha256": "abc"})
    stored = await engine.get(job.id)
    assert stored.status is JobStatus.COMPLETED and stored.result == {"sha256": "abc"}
    assert stored.finished_at is not None and stored.lease_expires_at is None


async def test_complete_held_completes_only_the_attempt_its_worker_holds(
    engine: Engine, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    await engine.create(JobSpec(job_type="t", timeout_ms=1000))
    (lost,) = await engine.claim(WORKER)
    with caplog.at_level(logging.INFO):
        assert not await engine.complete_held(lost.id, uuid.uuid4(), {"from": "a stranger"})
    assert "changed nothing" in caplog.text
    clock.advance(6.1)  # the lease lapses; the job is rescued and another worker claims it
    await Rescuer(engine).run_once()
    successor = uuid.uuid4()
    (again,) = await engine.claim(successor)
    assert not await engine.complete_held(again.id, WORKER, {"from": "the lost worker"})
    assert await engine.complete_held(again.id, successor, {"from": "the successor"})
    assert not await engine.complete_held(again.id, None, {"from": "anyone, too late"})
    stored = await engine.get(again.id)
    assert stored.status is JobStatus.COMPLETED and stored.result == {"from": "the successor"}
    assert stored.attempts == 2 and stored.finished_at is not None


async def test_retries_back_off_exponentially_then_fail(engine: Engine, clock: FakeClock) -> None:
    job_id = await engine.create(JobSpec(job_type="t", max_retries=2))
    waits = []
    for _ in range(2):
        (job,) = await engine.claim(WORKER)
        assert await engine.fail(Failure(job, "boom")) is JobStatus.PENDING
        stored = await engine.get(job_id)
        waits.append((stored.run_at - clock.now).total_seconds())
        assert await engine.claim(WORKER) == [], "not before the backoff elapsed"
        clock.advance(waits[-1])
    (job,) = await engine.claim(WORKER)
    assert await engine.fail(Failure(job, "boom again")) is JobStatus.FAILED

    stored = await engine.get(job_id)
    assert waits == [10.0, 20.0]
    assert stored.attempts == 3
    assert [(e["attempt"], e["kind"], e["message"]) for e in stored.errors] == [
        (1, "error", "boom"),
        (2, "error", "boom"),
        (3, "error", "boom again"),
    ]


async def test_non_retryable_failure_goes_straight_to_failed(engine: Engine) -> None:
    await engine.create(JobSpec(job_type="t", max_retries=5))
    (job,) = await engine.claim(WORKER)
    status = await engine.fail(Failure(job, "checksum mismatch", kind=FailureKind.PERMANENT, retryable=False))
    assert status is JobStatus.FAILED
    assert (await engine.get(job.id)).errors[0]["kind"] == "permanent"


async def test_timeout_is_a_retryable_error(engine: Engine) -> None:
    await engine.create(JobSpec(job_type="t", max_retries=1, timeout_ms=100))
    (job,) = await engine.claim(WORKER)
    assert await engine.fail(Failure(job, "timed out after 0.1 s", kind=FailureKind.TIMEOUT)) is JobStatus.PENDING
    assert (await engine.get(job.id)).errors[0]["kind"] == "timeout"


async def test_expired_lease_is_rescued_and_late_completion_is_refused(
    engine: Engine, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    await engine.create(JobSpec(job_type="t", timeout_ms=1000, max_retries=3))
    (lost,) = await engine.claim(WORKER)
    rescuer = Rescuer(engine)

    clock.advance(5.9)  # timeout 1 s + grace 5 s: not yet lapsed
    assert (await rescuer.run_once()).requeued == 0
    clock.advance(0.2)
    assert (await rescuer.run_once()).requeued == 1

    (again,) = await engine.claim(uuid.uuid4())
    assert again.id == lost.id and again.attempts == 2
    with caplog.at_level(logging.WARNING):
        assert not await engine.complete(lost, {"from": "the lost worker"})
    assert "changed nothing" in caplog.text
    assert await engine.complete(again, {"from": "the new worker"})
    stored = await engine.get(lost.id)
    assert stored.result == {"from": "the new worker"}
    assert [e["kind"] for e in stored.errors] == ["worker_lost"]


async def test_heartbeat_extends_the_lease_and_reports_lost_jobs(engine: Engine, clock: FakeClock) -> None:
    await engine.create(JobSpec(job_type="t", timeout_ms=1000))
    (job,) = await engine.claim(WORKER)
    for _ in range(5):
        clock.advance(4)
        assert await engine.heartbeat([(job.id, job.attempts)]) == {job.id: False}
        assert (await Rescuer(engine).run_once()).requeued == 0
    assert await engine.heartbeat([(job.id, job.attempts + 1)]) == {}, "a stale attempt holds nothing"


async def test_a_poison_job_that_keeps_killing_its_worker_ends_failed(engine: Engine, clock: FakeClock) -> None:
    job_id = await engine.create(JobSpec(job_type="t", timeout_ms=1000, max_retries=2))
    rescuer = Rescuer(engine)
    for _ in range(3):
        assert len(await engine.claim(uuid.uuid4())) == 1
        clock.advance(60)
        await rescuer.run_once()
    stored = await engine.get(job_id)
    assert stored.status is JobStatus.FAILED
    assert [e["kind"] for e in stored.errors] == ["worker_lost"] * 3
    assert await engine.claim(WORKER) == []


async def test_several_rescuers_at_once_rescue_each_job_once(engine: Engine, clock: FakeClock) -> None:
    import asyncio

    for _ in range(50):
        await engine.create(JobSpec(job_type="t", timeout_ms=1000))
    await engine.claim(WORKER, limit=50)
    clock.advance(60)
    reports = await asyncio.gather(*(Rescuer(engine, batch_size=7).run_once() for _ in range(6)))
    while (extra := await Rescuer(engine).run_once()).requeued:
        reports.append(extra)
    assert sum(r.requeued for r in reports) == 50
    for job in await engine.claim(WORKER, limit=100):
        assert len(job.errors) == 1


async def test_requeue_returns_jobs_without_spending_an_attempt(engine: Engine) -> None:
    await engine.create(JobSpec(job_type="t"))
    (job,) = await engine.claim(WORKER)
    assert await engine.requeue([job]) == {job.id}
    (again,) = await engine.claim(WORKER)
    assert again.attempts == 1 and again.errors == []


async def test_cancel_pending_at_once_and_running_at_next_heartbeat(engine: Engine) -> None:
    pending = await engine.create(JobSpec(job_type="later", run_at=None, priority=-1))
    running_id = await engine.create(JobSpec(job_type="now", priority=1))
    (running,) = await engine.claim(WORKER, job_types=["now"])

    assert await engine.cancel(pending) is JobStatus.CANCELLED
    assert await engine.cancel(running_id) is JobStatus.RUNNING
    assert await engine.heartbeat([(running.id, running.attempts)]) == {running.id: True}
    assert await engine.acknowledge_cancel(running)
    assert (await engine.get(running_id)).status is JobStatus.CANCELLED
    assert await engine.cancel(running_id) is JobStatus.CANCELLED, "cancelling a final job changes nothing"


async def test_retry_a_failed_job_with_a_fresh_budget(engine: Engine) -> None:
    await engine.create(JobSpec(job_type="t", max_retries=0))
    (job,) = await engine.claim(WORKER)
    await engine.fail(Failure(job, "boom"))
    assert await engine.retry(job.id) is JobStatus.PENDING
    (again,) = await engine.claim(WORKER)
    assert again.attempts == 2 and again.retries_left == 0
    assert await engine.fail(Failure(again, "boom")) is JobStatus.FAILED


async def test_retry_refuses_live_jobs_and_unknown_ids(engine: Engine) -> None:
    job_id = await engine.create(JobSpec(job_type="t"))
    with pytest.raises(JobConflict, match="PENDING"):
        await engine.retry(job_id)
    with pytest.raises(JobNotFound):
        await engine.retry(uuid.uuid4())
    with pytest.raises(JobNotFound):
        await engine.get(uuid.uuid4())


async def test_checkpoints_belong_to_the_attempt_holding_the_job(engine: Engine) -> None:
    await engine.create(JobSpec(job_type="t"))
    (job,) = await engine.claim(WORKER)
    assert not job.has_checkpoint
    assert await engine.checkpoint(job, {"rows": 1000})
    assert await engine.last_checkpoint(job.id) == {"rows": 1000}
    await engine.requeue([job])
    assert not await engine.checkpoint(job, {"rows": 2000}), "a requeued attempt cannot write"
    assert await engine.last_checkpoint(job.id) == {"rows": 1000}
    (again,) = await engine.claim(WORKER)
    assert again.attempts == job.attempts and again.has_checkpoint, "the snoozed attempt's progress is announced"
