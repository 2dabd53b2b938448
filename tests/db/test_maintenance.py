"""Retention and queue depth: the hot table stays small and depth is read cheaply."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from conveyor.db.records import JobStatus, NewSweep, Removal, SweepKind, SweepStatus
from conveyor.pipeline.engine import Engine, Failure
from conveyor.pipeline.engine.dag import JobSpec
from conveyor.pipeline.engine.settings import RetentionSettings
from conveyor.pipeline.maintenance.retention import Pruner
from tests.db.conftest import FakeClock

WORKER = uuid.uuid4()


async def test_pruner_deletes_old_finished_jobs_in_batches_and_keeps_the_rest(engine: Engine, clock: FakeClock) -> None:
    await engine.create_dag([JobSpec(job_type="done") for _ in range(5)])
    await engine.create(JobSpec(job_type="fails", max_retries=0, priority=-1))
    for job in await engine.claim(WORKER, job_types=["done"], limit=5):
        await engine.complete(job, {})
    (failing,) = await engine.claim(WORKER, job_types=["fails"])
    await engine.fail(Failure(failing, "boom"))
    live = await engine.create(JobSpec(job_type="live"))

    settings = RetentionSettings(completed_after_seconds=3600, failed_after_seconds=7200, batch_size=2)
    pruner = Pruner(engine, settings)
    assert (await pruner.run_once()).jobs == 0, "nothing is old enough yet"
    clock.advance(3601)
    assert [(await pruner.run_once()).jobs for _ in range(4)] == [2, 2, 1, 0]
    assert (await engine.get(failing.id)).status is JobStatus.FAILED, "failed jobs are kept longer"
    clock.advance(3600)
    assert (await pruner.run_once()).jobs == 1
    assert (await engine.get(live)).status is JobStatus.PENDING


async def test_a_finished_parent_is_kept_while_its_children_are_live(engine: Engine, clock: FakeClock) -> None:
    dag = await engine.create_dag([JobSpec(name="p", job_type="p"), JobSpec(name="c", job_type="c", depends_on=["p"])])
    (parent,) = await engine.claim(WORKER, job_types=["p"])
    await engine.complete(parent, {"for": "the child"})
    clock.advance(10**6)
    await Pruner(engine, RetentionSettings(completed_after_seconds=1)).run_once()
    assert (await engine.get(dag.ids["p"])).result == {"for": "the child"}


async def test_queue_depth_counts_live_jobs_by_status_and_type(engine: Engine, clock: FakeClock) -> None:
    from conveyor.db import jobs as job_queries
    from conveyor.db.connection import acquire

    await engine.create_dag([JobSpec(job_type="a") for _ in range(3)] + [JobSpec(job_type="b")])
    await engine.claim(WORKER, job_types=["b"])
    clock.advance(30)
    async with acquire(engine.pool) as conn:
        depth = {(d.status, d.job_type): d for d in await job_queries.depth(conn, now=clock.now)}
    assert depth[(JobStatus.PENDING, "a")].jobs == 3
    assert depth[(JobStatus.PENDING, "a")].oldest_ready_seconds == 30
    assert depth[(JobStatus.RUNNING, "b")].jobs == 1


async def test_finished_sweeps_and_old_tombstones_are_pruned_but_each_targets_last_sweep_stays(
    engine: Engine, clock: FakeClock
) -> None:
    finished = []
    for status in (SweepStatus.COMPLETED, SweepStatus.COMPLETED, SweepStatus.FAILED, SweepStatus.COMPLETED):
        sweep = await engine.sweeps.create(NewSweep(kind=SweepKind.RECONCILE, bucket="b", reason="interval"))
        await engine.sweeps.claim(sweep.id, owner="me", lease_seconds=30)
        done = await engine.sweeps.finish(sweep.id, owner="me", status=status)
        assert done is not None
        finished.append(done)
    other = await engine.sweeps.create(NewSweep(kind=SweepKind.RECONCILE, bucket="other", reason="interval"))
    await engine.sweeps.claim(other.id, owner="me", lease_seconds=30)
    await engine.sweeps.finish(other.id, owner="me", status=SweepStatus.COMPLETED)
    removed_at = datetime.now(UTC)
    async with engine.transaction() as tx:
        await tx.record_removals([Removal(bucket="b", key="gone", version_id="", any_version=False,
                                          removed_at=removed_at, message="object removed")])  # fmt: skip

    pruner = Pruner(engine, RetentionSettings(events_after_seconds=3600))
    assert (await pruner.run_once()).sweeps == 0, "a week has not passed"
    clock.now = removed_at + timedelta(days=8)
    report = await pruner.run_once()
    assert (report.sweeps, report.tombstones) == (3, 1)
    kept = {s.id for s in await engine.sweeps.list(SweepKind.RECONCILE)}
    assert kept == {finished[-1].id, other.id}, "each target's last complete sweep times the next one"
