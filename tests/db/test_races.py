"""Races with their interleaving pinned, not hoped for: the first party holds its transaction open (and so
its row locks) while the second starts; the test waits until PostgreSQL shows the second blocked, or
proves it went past, then lets the first commit."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import pytest

from conveyor.db import admin, events, jobs
from conveyor.db.connection import Connection, acquire
from conveyor.db.errors import DatabaseError
from conveyor.db.records import Completion, CompletionRow, HeldJob, JobRow, JobStatus, NewDeadLetter
from conveyor.ingest.deadletters import Replayer
from conveyor.ingest.events import parse_message
from conveyor.ingest.routing import load_rules, route
from conveyor.ingest.store import Positioned, store_events
from conveyor.pipeline.engine import Engine, EngineTransaction, JobConflict, JobSpec
from conveyor.pipeline.maintenance.rescuer import Rescuer
from conveyor.pipeline.worker.completer import Completer
from tests.db.conftest import FakeClock
from tests.events import minio_message

WORKER = uuid.uuid4()
T = TypeVar("T")


@asynccontextmanager
async def held_open(engine: Engine) -> AsyncIterator[Connection]:
    """A connection inside a transaction that commits when the block ends."""
    async with acquire(engine.pool) as conn, conn.transaction():
        yield conn


async def blocked(engine: Engine, work: Awaitable[T]) -> asyncio.Task[T]:
    """Start ``work`` and return once PostgreSQL shows it waiting for a lock (fails if it finished instead)."""
    task = asyncio.ensure_future(work)
    async with acquire(engine.pool) as observer:
        for _ in range(200):
            if await admin.lock_waiters(observer) > 0:
                return task
            assert not task.done(), f"expected to block, but it finished: {task.result()!r}"
            await asyncio.sleep(0.01)
    raise AssertionError("the second party never blocked on the first's locks")


async def running(engine: Engine, **spec: Any) -> Any:
    await engine.create(JobSpec(job_type="race", **spec))
    (job,) = await engine.claim(WORKER, job_types=["race"])
    return job


async def test_two_parents_completing_at_once_release_their_child_exactly_once(engine: Engine) -> None:
    dag = await engine.create_dag([JobSpec(job_type="p", name="a"), JobSpec(job_type="p", name="b"),
                                   JobSpec(job_type="child", name="c", depends_on=["a", "b"])])  # fmt: skip
    a, b = await engine.claim(WORKER, job_types=["p"], limit=2)
    async with held_open(engine) as first:
        first_done = await jobs.complete_many(first, [CompletionRow(a.id, a.attempts, {})])
        second = await blocked(engine, _complete_in_own_transaction(engine, CompletionRow(b.id, b.attempts, {})))
    second_done = await second
    assert first_done.released == {} and set(second_done.released) == {dag.ids["c"]}, "released once, by the last"
    child = await engine.get(dag.ids["c"])
    assert child.status is JobStatus.PENDING and child.pending_parents == 0


async def _complete_in_own_transaction(engine: Engine, row: CompletionRow) -> Completion:
    async with held_open(engine) as conn:
        return await jobs.complete_many(conn, [row])


async def test_cancel_pinned_before_complete_and_complete_before_cancel_both_end_in_one_final_state(
    engine: Engine,
) -> None:
    job = await running(engine)
    async with held_open(engine) as canceller:  # cancel first: the running job is asked to stop ...
        assert await jobs.cancel(canceller, job.id, reason="operator") is JobStatus.RUNNING
        completion = await blocked(engine, engine.complete(job, {"done": True}))
    assert await completion, "... and the handler's completion, arriving after, still lands"
    assert (await engine.get(job.id)).status is JobStatus.COMPLETED
    assert not await engine.acknowledge_cancel(job), "the late acknowledgement changes nothing"

    other = await running(engine)
    async with held_open(engine) as completer:  # complete first: the cancel that waited finds it final
        await jobs.complete_many(completer, [CompletionRow(other.id, other.attempts, {})])
        cancel = await blocked(engine, engine.cancel(other.id))
    assert await cancel is JobStatus.COMPLETED
    assert (await engine.get(other.id)).errors == []


async def test_rescue_pinned_before_a_late_completion_wins_and_the_completion_changes_nothing(
    engine: Engine, clock: FakeClock
) -> None:
    job = await running(engine, timeout_ms=1000)
    clock.advance(60)  # the lease (timeout + 5 s grace) lapsed: the worker is presumed lost
    async with held_open(engine) as rescuer:
        (rescued,) = await jobs.rescue_expired(rescuer, limit=10, now=clock())
        late = await blocked(engine, engine.complete(job, {"late": True}))
    assert rescued.status is JobStatus.PENDING and not await late, "the late completion was stale"
    back = await engine.get(job.id)
    assert back.status is JobStatus.PENDING and [e["kind"] for e in back.errors] == ["worker_lost"]


async def test_a_completion_holding_the_row_is_skipped_by_the_rescuer_not_waited_for(
    engine: Engine, clock: FakeClock
) -> None:
    job = await running(engine, timeout_ms=1000)
    clock.advance(60)
    async with held_open(engine) as completer:
        await jobs.complete_many(completer, [CompletionRow(job.id, job.attempts, {})])
        report = await asyncio.wait_for(Rescuer(engine).run_once(), 5)  # SKIP LOCKED: no wait, no rescue
    assert report.requeued + report.failed == 0
    assert (await engine.get(job.id)).status is JobStatus.COMPLETED


async def test_an_operator_retry_during_a_rescue_is_refused_then_succeeds_once_the_rescue_commits(
    engine: Engine, clock: FakeClock
) -> None:
    job = await running(engine, timeout_ms=1000, max_retries=0)  # its only attempt
    clock.advance(60)
    async with held_open(engine) as rescuer:
        (rescued,) = await jobs.rescue_expired(rescuer, limit=10, now=clock())
        with pytest.raises(JobConflict, match="is RUNNING"):  # it judges the committed row: no lost update
            await asyncio.wait_for(engine.retry(job.id), 5)
    assert rescued.status is JobStatus.FAILED
    assert await engine.retry(job.id) is JobStatus.PENDING, "the rescue committed FAILED: now it can be retried"
    assert (await engine.claim(WORKER, job_types=["race"]))[0].id == job.id


async def test_a_heartbeat_racing_a_rescue_cannot_revive_the_lapsed_attempt(engine: Engine, clock: FakeClock) -> None:
    job = await running(engine, timeout_ms=1000)
    clock.advance(60)
    async with held_open(engine) as rescuer:
        await jobs.rescue_expired(rescuer, limit=10, now=clock())
        beat = await blocked(engine, engine.heartbeat([HeldJob(job.id, job.attempts)]))
    assert await beat == {}, "the worker learns its job is gone and stops it"


LOCK_ROW = "UPDATE job_rows SET lease_expires_at = lease_expires_at WHERE id = $1"


async def test_no_completion_batch_is_written_while_the_workers_heartbeat_runs(engine: Engine) -> None:
    """A heartbeat and a completion batch lock the same jobs, in whatever order their plans take: run at
    once under load they deadlocked. The worker's heartbeat runs between its completer's writes."""
    job = await running(engine)
    completer = Completer(engine)
    completer.add(job, {"ok": True})
    async with completer.between_writes():
        flush = asyncio.ensure_future(completer.flush())
        await asyncio.sleep(0.3)
        assert not flush.done() and (await engine.get(job.id)).status is JobStatus.RUNNING, "the write waits"
        assert await engine.heartbeat([HeldJob(job.id, job.attempts)]) == {job.id: False}
    await flush
    assert (await engine.get(job.id)).status is JobStatus.COMPLETED


async def test_a_completion_that_loses_a_deadlock_is_written_again_not_failed(engine: Engine) -> None:
    """The completion locks its job, then waits for the child another transaction holds; that one then waits
    for the job. PostgreSQL rolls back the completion (it waited first): a batch of one, which a refusal
    would have failed permanently."""
    dag = await engine.create_dag([JobSpec(job_type="race", name="parent"),
                                   JobSpec(job_type="race", name="child", depends_on=["parent"])])  # fmt: skip
    (parent,) = await engine.claim(WORKER, job_types=["race"])
    refused: list[JobRow] = []

    async def on_refused(job: JobRow, error: DatabaseError) -> None:
        refused.append(job)

    completer = Completer(engine, on_refused=on_refused)
    completer.add(parent, {"ok": True})
    async with held_open(engine) as other:
        await other.execute(LOCK_ROW, dag.ids["child"])
        flush = await blocked(engine, completer.flush())
        await other.execute(LOCK_ROW, parent.id)  # waits until the deadlock's victim, the completion, rolls back
    await flush
    assert refused == [], "a rolled-back completion is not the result's fault"
    assert (await engine.get(parent.id)).status is JobStatus.COMPLETED
    assert (await engine.get(dag.ids["child"])).status is JobStatus.PENDING, "and its child was released"


def _letter(value: bytes, offset: int) -> NewDeadLetter:
    return NewDeadLetter(reason="unrouted", error="no pipeline", topic="t", partition=0, offset=offset, key=None,
                         value=value)  # fmt: skip


async def _record_letter(engine: Engine, letter: NewDeadLetter) -> int:
    async with acquire(engine.pool) as conn:
        (letter_id,) = await events.insert_dead_letters(conn, [letter])
    return letter_id


async def test_two_replays_of_one_dead_letter_create_its_jobs_once(engine: Engine) -> None:
    letter_id = await _record_letter(engine, _letter(minio_message("uploads", "twice.csv"), 7))
    replayer = Replayer(engine, load_rules(None), max_bytes=1 << 20, max_lineage_depth=3)
    async with engine.transaction() as holder:  # a third party holds the letter: both replays queue behind it
        await holder.lock_dead_letter(letter_id)
        first = await blocked(engine, replayer.replay(letter_id))
        second = asyncio.ensure_future(replayer.replay(letter_id))
        await _until(lambda: _waiters(engine, 2))
    outcomes = sorted([(await first), (await second)], key=lambda o: -(o.jobs_created if o else 0))
    assert [o.jobs_created for o in outcomes if o] == [3, 0], "checksum, inspect, csv.profile: once"
    assert (await engine.objects.job_counts())[0].jobs == 3


async def test_a_replay_racing_live_ingest_of_the_same_event_creates_nothing_twice(engine: Engine) -> None:
    message = minio_message("uploads", "raced.csv", sequencer="ABC123")
    letter_id = await _record_letter(engine, _letter(message, 9))
    replayer = Replayer(engine, load_rules(None), max_bytes=1 << 20, max_lineage_depth=3)
    (event,) = parse_message(message, max_bytes=1 << 20)
    live = [Positioned(route(event, load_rules(None), max_lineage_depth=3), 0, 9)]
    async with acquire(engine.pool) as conn, conn.transaction():  # live ingest records it, not yet committed
        stored = await store_events(EngineTransaction(conn, now=None), live, topic="t")
        replay = await blocked(engine, replayer.replay(letter_id))  # waits on the event's unique identity
    outcome = await replay
    assert stored.jobs_created == 3 and outcome is not None and outcome.jobs_created == 0
    (counted,) = await engine.objects.job_counts()
    assert counted.jobs == 3 and outcome.letter.replayed_at is not None


async def _waiters(engine: Engine, count: int) -> bool:
    async with acquire(engine.pool) as observer:
        return await admin.lock_waiters(observer) >= count


async def _until(check: Callable[[], Awaitable[bool]]) -> None:
    for _ in range(300):
        if await check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the interleaving was never reached")
