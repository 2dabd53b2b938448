"""Dependencies: release in the completing transaction, cancellation downstream, validation up front."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from conveyor.db import jobs as job_queries
from conveyor.db.connection import Pool, acquire
from conveyor.db.records import JobRow, JobStatus, NewJob
from conveyor.pipeline.engine import Engine, Failure
from conveyor.pipeline.engine.dag import JobSpec, SourceObject
from conveyor.pipeline.engine.errors import DependencyCycle, InvalidDag, UnknownParent

WORKER = uuid.uuid4()


async def run_one(engine: Engine, job_type: str | None = None, result: object = None) -> JobRow:
    """Claim one job (of ``job_type``) and complete it."""
    (job,) = await engine.claim(WORKER, job_types=[job_type] if job_type else [], limit=1)
    assert await engine.complete(job, result if result is not None else {"step": job.step})
    return job


async def statuses(engine: Engine, ids: dict[str, uuid.UUID]) -> dict[str, JobStatus]:
    return {name: (await engine.get(job_id)).status for name, job_id in ids.items()}


async def test_chain_runs_in_order(engine: Engine) -> None:
    dag = await engine.create_dag(
        [JobSpec(name="a", job_type="t"), JobSpec(name="b", job_type="t", depends_on=["a"]),
         JobSpec(name="c", job_type="t", depends_on=["b"])]
    )  # fmt: skip
    assert await statuses(engine, dag.ids) == {"a": "PENDING", "b": "BLOCKED", "c": "BLOCKED"}
    order = [(await run_one(engine)).step for _ in range(3)]
    assert order == ["a", "b", "c"]
    assert await engine.claim(WORKER) == []


async def test_diamond_child_waits_for_both_parents_and_reads_their_results(engine: Engine) -> None:
    dag = await engine.create_dag(
        [JobSpec(name="root", job_type="t"),
         JobSpec(name="left", job_type="t", depends_on=["root"]),
         JobSpec(name="right", job_type="t", depends_on=["root"]),
         JobSpec(name="join", job_type="t", depends_on=["left", "right"])]
    )  # fmt: skip
    await run_one(engine)
    first = await run_one(engine, result={"from": "first"})
    assert (await engine.get(dag.ids["join"])).status is JobStatus.BLOCKED
    await run_one(engine, result={"from": "second"})
    (join,) = await engine.claim(WORKER)
    assert join.id == dag.ids["join"]
    parents = await engine.parent_results(join.id)
    assert {p["step"] for p in parents} == {"left", "right"}
    assert {p["result"]["from"] for p in parents} == {"first", "second"}
    assert first.step in {"left", "right"}


async def test_fan_out_fan_in_of_100(engine: Engine) -> None:
    specs = [JobSpec(name="split", job_type="split")]
    specs += [JobSpec(name=f"part-{i}", job_type="part", depends_on=["split"]) for i in range(100)]
    specs += [JobSpec(name="merge", job_type="merge", depends_on=[f"part-{i}" for i in range(100)])]
    dag = await engine.create_dag(specs)
    await run_one(engine, "split")
    parts = await engine.claim(WORKER, job_types=["part"], limit=100)
    assert len(parts) == 100
    assert await engine.claim(WORKER, job_types=["merge"]) == []
    for batch in (parts[:60], parts[60:99]):
        await engine.complete_many([(job, {"n": 1}) for job in batch])
    assert await engine.claim(WORKER, job_types=["merge"]) == []
    await engine.complete_many([(parts[99], {"n": 1})])
    (merge,) = await engine.claim(WORKER, job_types=["merge"])
    assert merge.id == dag.ids["merge"]
    assert len(await engine.parent_results(merge.id)) == 100


async def test_a_parent_failing_mid_dag_cancels_every_descendant_with_the_reason(engine: Engine) -> None:
    dag = await engine.create_dag(
        [JobSpec(name="a", job_type="t"),
         JobSpec(name="b", job_type="t", depends_on=["a"], max_retries=0),
         JobSpec(name="c", job_type="t", depends_on=["b"]),
         JobSpec(name="d", job_type="t", depends_on=["c", "a"]),
         JobSpec(name="side", job_type="t", depends_on=["a"])]
    )  # fmt: skip
    await run_one(engine)
    b, side = sorted(await engine.claim(WORKER, limit=2), key=lambda j: str(j.step))
    assert await engine.fail(Failure(b, "corrupt input")) is JobStatus.FAILED
    await engine.complete(side, {})

    assert await statuses(engine, dag.ids) == {
        "a": "COMPLETED", "b": "FAILED", "c": "CANCELLED", "d": "CANCELLED", "side": "COMPLETED"
    }  # fmt: skip
    for name in ("c", "d"):
        (error,) = (await engine.get(dag.ids[name])).errors
        assert error["kind"] == "upstream_failed"
        assert error["upstream_job_id"] == str(dag.ids["b"])


async def test_retrying_the_failed_parent_reblocks_its_cancelled_descendants(engine: Engine) -> None:
    dag = await engine.create_dag(
        [JobSpec(name="a", job_type="t", max_retries=0),
         JobSpec(name="b", job_type="t", depends_on=["a"]),
         JobSpec(name="c", job_type="t", depends_on=["b"])]
    )  # fmt: skip
    (a,) = await engine.claim(WORKER)
    await engine.fail(Failure(a, "boom"))
    assert await statuses(engine, dag.ids) == {"a": "FAILED", "b": "CANCELLED", "c": "CANCELLED"}

    assert await engine.retry(dag.ids["a"]) is JobStatus.PENDING
    assert await statuses(engine, dag.ids) == {"a": "PENDING", "b": "BLOCKED", "c": "BLOCKED"}
    assert [(await run_one(engine)).step for _ in range(3)] == ["a", "b", "c"]


async def test_cancelling_a_job_cancels_its_descendants(engine: Engine) -> None:
    dag = await engine.create_dag(
        [JobSpec(name="a", job_type="t"), JobSpec(name="b", job_type="t", depends_on=["a"])]
    )  # fmt: skip
    assert await engine.cancel(dag.ids["a"]) is JobStatus.CANCELLED
    assert await statuses(engine, dag.ids) == {"a": "CANCELLED", "b": "CANCELLED"}


async def test_two_parents_completing_in_concurrent_transactions_release_the_child_once(engine: Engine) -> None:
    for _ in range(20):
        dag = await engine.create_dag(
            [JobSpec(name="p1", job_type="p"), JobSpec(name="p2", job_type="p"),
             JobSpec(name="child", job_type="c", depends_on=["p1", "p2"])]
        )  # fmt: skip
        p1, p2 = await engine.claim(WORKER, job_types=["p"], limit=2)
        await asyncio.gather(engine.complete(p1, {}), engine.complete(p2, {}))
        child = await engine.get(dag.ids["child"])
        assert child.status is JobStatus.PENDING and child.pending_parents == 0
        (claimed,) = await engine.claim(WORKER, job_types=["c"], limit=5)
        assert claimed.id == dag.ids["child"]
        await engine.complete(claimed, {})


async def test_dag_creation_is_idempotent_on_keys(engine: Engine) -> None:
    specs = [
        JobSpec(name="a", job_type="t", idempotency_key="ev-1/a"),
        JobSpec(name="b", job_type="t", depends_on=["a"], idempotency_key="ev-1/b"),
    ]
    first = await engine.create_dag(specs)
    second = await engine.create_dag(specs)
    assert first.created and not second.created
    assert second.ids == first.ids
    assert len(await engine.claim(WORKER, limit=10)) == 1


async def test_depending_on_existing_jobs_by_id(engine: Engine) -> None:
    done_parent = await engine.create(JobSpec(job_type="t"))
    await run_one(engine)
    live_parent = await engine.create(JobSpec(job_type="t"))
    child = await engine.create(JobSpec(job_type="child", depends_on=[done_parent, live_parent]))
    assert (await engine.get(child)).pending_parents == 1, "a completed parent no longer counts"
    await run_one(engine, "t")
    assert (await engine.get(child)).status is JobStatus.PENDING


async def test_priority_is_inherited_by_ancestors(engine: Engine) -> None:
    dag = await engine.create_dag(
        [JobSpec(name="a", job_type="t", priority=0), JobSpec(name="b", job_type="t", depends_on=["a"], priority=1),
         JobSpec(name="urgent", job_type="t", depends_on=["b"], priority=50)]
    )  # fmt: skip
    assert (await engine.get(dag.ids["a"])).priority == 50
    assert (await engine.get(dag.ids["b"])).priority == 50


@pytest.mark.parametrize(
    ("specs", "error", "message"),
    [
        ([JobSpec(name="a", job_type="t", depends_on=["b"]), JobSpec(name="b", job_type="t", depends_on=["a"])],
         DependencyCycle, "cycle"),
        ([JobSpec(name="a", job_type="t", depends_on=["a"])], DependencyCycle, "cycle"),
        ([JobSpec(name="a", job_type="t", depends_on=["ghost"])], InvalidDag, "'ghost'"),
        ([JobSpec(name="a", job_type="t"), JobSpec(name="a", job_type="t")], InvalidDag, "used twice"),
    ],
)  # fmt: skip
async def test_invalid_dags_are_rejected_before_writing(
    engine: Engine, specs: list[JobSpec], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        await engine.create_dag(specs)
    assert await engine.claim(WORKER, limit=10) == []


async def test_unknown_parent_ids_are_rejected_and_nothing_is_written(engine: Engine) -> None:
    ghost = uuid.uuid4()
    with pytest.raises(UnknownParent, match=str(ghost)):
        await engine.create(JobSpec(job_type="t", depends_on=[ghost]))
    assert await engine.claim(WORKER, limit=10) == []


async def test_a_bulk_batch_is_copied_and_lands_as_the_inserted_batch_does(pool: Pool) -> None:
    """Bulk enqueue COPYs a batch with no keys and no times; with a key, the same batch is inserted. Both
    write the same columns."""
    engine = Engine(pool)  # the real clock: a test clock (a fixed `now`) takes the INSERT path
    assert engine.db_now() is None

    def batch(tag: str, keyed: bool) -> list[JobSpec]:
        return [JobSpec(job_type=f"bulk.{tag}", payload={"n": n, "nested": [1, {"a": None}]}, priority=n % 3,
                        max_retries=n % 5, timeout_ms=1000 + n, concurrency_key=f"k{n % 2}",
                        idempotency_key=f"{tag}-{n}" if keyed else None)
                for n in range(150)]  # fmt: skip

    as_new = [NewJob(id=uuid.uuid4(), job_type=s.job_type, payload={}, idempotency_key=s.idempotency_key)
              for s in batch("copied", keyed=False) + batch("inserted", keyed=True)]  # fmt: skip
    assert job_queries.copied(as_new[:150], now=None) and not job_queries.copied(as_new[150:], now=None)
    copied = await engine.create_dag(batch("copied", keyed=False), source=SourceObject("b", "k", "v1"), pipeline="p")
    inserted = await engine.create_dag(batch("inserted", keyed=True), source=SourceObject("b", "k", "v1"), pipeline="p")
    columns = ("payload", "status", "priority", "max_retries", "timeout_ms", "pending_parents", "pipeline", "step",
               "source_bucket", "source_key", "source_version", "concurrency_key", "attempts", "errors")  # fmt: skip
    async with acquire(pool) as conn:
        rows = {
            name: [tuple(r[c] for c in columns) for r in await conn.fetch(
                "SELECT * FROM job_rows WHERE id = ANY($1::uuid[]) ORDER BY id", list(dag.ids.values()))]
            for name, dag in (("copied", copied), ("inserted", inserted))
        }  # fmt: skip
    assert len(rows["copied"]) == 150 and rows["copied"] == rows["inserted"]
    assert rows["copied"][7][0] == {"n": 7, "nested": [1, {"a": None}]}
