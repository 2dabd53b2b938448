"""Flow control in the claim statement: caps per key and job type, fair share across keys, rate limits,
and the RUNNING counts that make caps safe (kept by a trigger, freed by rescue, mended by a recount)."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry

from conveyor.api.cluster_metrics import ClusterMetrics, ClusterMetricsRefresher
from conveyor.db.connection import Pool
from conveyor.db.records import FlowLimit, FlowScope, JobFilter, JobStatus
from conveyor.pipeline.engine import Engine, InvalidDag, InvalidLimit, JobSpec
from conveyor.pipeline.maintenance.rescuer import Rescuer
from tests.db.conftest import FakeClock

WORKER = uuid.uuid4()


async def _enqueue(engine: Engine, key: str, count: int, *, job_type: str = "t", priority: int = 0,
                   limit: int | None = None) -> list[uuid.UUID]:  # fmt: skip
    specs = [JobSpec(job_type=job_type, name=f"{key}-{i}", concurrency_key=key, concurrency_limit=limit,
                     priority=priority) for i in range(count)]  # fmt: skip
    return list((await engine.create_dag(specs)).ids.values())


async def _running_by_key(pool: Pool) -> Counter[str]:
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT concurrency_key, count(*) FROM job_rows WHERE status = 'RUNNING' GROUP BY 1")
    return Counter({r[0]: r[1] for r in rows})


async def _counts(engine: Engine) -> dict[tuple[FlowScope, str], int]:
    return {(row.scope, row.name): row.running for row in await engine.flow.all()}


async def test_a_key_s_cap_holds_across_concurrent_claimers_and_its_count_follows_every_finish(
    engine: Engine, pool: Pool
) -> None:
    await _enqueue(engine, "tenant-a", 200, limit=3)
    await _enqueue(engine, "tenant-b", 50)
    seen: list[int] = []

    async def claimer() -> None:
        worker = uuid.uuid4()
        while jobs := await engine.claim(worker, job_types=["t"], limit=4):
            seen.append((await _running_by_key(pool))["tenant-a"])
            await asyncio.sleep(0.001)
            await engine.complete_many([(job, None) for job in jobs])

    await asyncio.gather(*(claimer() for _ in range(8)))
    assert max(seen) == 3, "the cap was reached and never passed"
    assert await _running_by_key(pool) == Counter()
    assert await _counts(engine) == {(FlowScope.KEY, "tenant-a"): 0}
    done = await engine.list_jobs(JobFilter(status=JobStatus.COMPLETED), limit=1000)
    assert len(done) == 250


async def test_a_new_key_overtakes_a_busy_key_s_backlog(engine: Engine) -> None:
    await _enqueue(engine, "big", 1000)
    held = await engine.claim(WORKER, job_types=["t"], limit=20)
    assert {j.concurrency_key for j in held} == {"big"}
    await _enqueue(engine, "small", 5)
    nxt = await engine.claim(WORKER, job_types=["t"], limit=5)
    assert [j.concurrency_key for j in nxt] == ["small"] * 5, "water-filling: 0 running beats 20"


async def test_keys_share_a_claim_evenly_and_by_weight(engine: Engine) -> None:
    for key in ("a", "b", "c"):
        await _enqueue(engine, key, 100)
    even = Counter(j.concurrency_key for j in await engine.claim(WORKER, job_types=["t"], limit=12))
    assert even == {"a": 4, "b": 4, "c": 4}
    await engine.flow.set(FlowLimit(scope=FlowScope.KEY, name="c", weight=4))
    weighted = Counter(j.concurrency_key for j in await engine.claim(WORKER, job_types=["t"], limit=12))
    # Running a 4, b 4, c 4 (weight 4): c's turns are (4 + n) / 4, a's and b's 4 + n; c takes its whole
    # window of candidates (its weight's share and a quarter, 10) before a and b get one each.
    assert weighted == {"a": 1, "b": 1, "c": 10}


async def test_priority_still_comes_first_across_keys(engine: Engine) -> None:
    await _enqueue(engine, "quiet", 3)
    await _enqueue(engine, "loud", 3, priority=10)
    claimed = await engine.claim(WORKER, job_types=["t"], limit=3)
    assert {j.concurrency_key for j in claimed} == {"loud"}


async def test_a_job_type_cap_holds_whatever_the_keys(engine: Engine) -> None:
    await engine.flow.set(FlowLimit(scope=FlowScope.JOB_TYPE, name="scan", max_running=2))
    for key in ("a", "b", "c"):
        await _enqueue(engine, key, 5, job_type="scan")
    await _enqueue(engine, "a", 5, job_type="t")
    first = await engine.claim(WORKER, limit=10)
    second = await engine.claim(WORKER, limit=10)
    # Key a's window of candidates held three of its five `t` jobs behind its `scan` jobs: the next claim
    # takes the other two; no claim passes the type's cap.
    assert Counter(j.job_type for j in first + second) == {"scan": 2, "t": 5}
    assert await engine.claim(WORKER, job_types=["scan"], limit=10) == []
    (pending,) = [j for j in await engine.list_jobs(JobFilter(status=JobStatus.PENDING, job_type="scan"), limit=1)]
    holds = await engine.flow.holds(pending.id)
    assert [h.describe() for h in holds] == ["job_type 'scan' runs 2 of at most 2"]
    await engine.complete(first[0] if first[0].job_type == "scan" else first[1], None)
    assert len(await engine.claim(WORKER, job_types=["scan"], limit=10)) == 1, "the freed slot is taken"


async def test_a_rate_limit_grants_its_burst_then_its_rate(engine: Engine, clock: FakeClock) -> None:
    await engine.flow.set(FlowLimit(scope=FlowScope.JOB_TYPE, name="t", rate_per_second=10, burst=5))
    await _enqueue(engine, "", 100)
    assert len(await engine.claim(WORKER, limit=100)) == 5, "a full bucket: the burst"
    assert await engine.claim(WORKER, limit=100) == []
    assert await engine.flow.rate_wait(["t"]) == pytest.approx(0.1)
    clock.advance(0.35)
    assert len(await engine.claim(WORKER, limit=100)) == 3, "10/s for 0.35 s: three whole tokens"
    clock.advance(60)
    assert len(await engine.claim(WORKER, limit=100)) == 5, "refills to the burst, never beyond"
    assert await engine.flow.rate_wait(["other"]) is None, "no rate limit holds back another type"


async def test_a_rescued_job_gives_its_slot_back(engine: Engine, clock: FakeClock) -> None:
    await _enqueue(engine, "k", 5, limit=2)
    lost = await engine.claim(WORKER, limit=5)
    assert len(lost) == 2 and await engine.claim(uuid.uuid4(), limit=5) == []
    clock.advance(lost[0].timeout_ms / 1000 + 10)  # the worker died: its leases lapse
    report = await Rescuer(engine).run_once()
    assert report.requeued == 2 and report.counts_mended == 0
    assert await _counts(engine) == {(FlowScope.KEY, "k"): 0}
    assert len(await engine.claim(uuid.uuid4(), limit=5)) == 2


async def test_a_drifted_count_is_mended_and_reported(engine: Engine, pool: Pool) -> None:
    await _enqueue(engine, "k", 4, limit=3)
    await engine.claim(WORKER, limit=4)
    async with pool.acquire() as conn:
        await conn.execute("UPDATE flow_limits SET running = 0")  # as if set while its jobs ran
    mended = await engine.flow.recount()
    assert [(m.scope, m.name, m.running) for m in mended] == [(FlowScope.KEY, "k", 3)]
    assert await engine.flow.recount() == []


async def test_the_previous_release_s_statements_through_the_view_are_counted(engine: Engine, pool: Pool) -> None:
    await _enqueue(engine, "k", 2, limit=5)
    async with pool.acquire() as conn:
        await conn.execute("UPDATE jobs SET status = 'RUNNING', attempts = 1 WHERE status = 'PENDING'")
    assert await _counts(engine) == {(FlowScope.KEY, "k"): 2}
    async with pool.acquire() as conn:
        await conn.execute("UPDATE jobs SET status = 'COMPLETED' WHERE status = 'RUNNING'")
    assert await _counts(engine) == {(FlowScope.KEY, "k"): 0}


async def test_a_pipeline_s_key_limit_leaves_an_operator_s_alone_and_goes_when_idle(
    engine: Engine, clock: FakeClock
) -> None:
    await _enqueue(engine, "ops", 1, limit=7)
    await engine.flow.set(FlowLimit(scope=FlowScope.KEY, name="ops", max_running=2))
    await _enqueue(engine, "ops", 1, limit=7)
    await _enqueue(engine, "tenant", 1, limit=3)
    limits = {row.name: (row.max_running, row.set_by.value) for row in await engine.flow.all()}
    assert limits == {"ops": (2, "operator"), "tenant": (3, "api")}
    for job in await engine.claim(WORKER, limit=10):
        await engine.complete(job, None)
    # Limits record when PostgreSQL last changed them (its own clock, not the test's).
    pruned = await engine.flow.prune(idle_before=datetime.now(UTC) + timedelta(seconds=1))
    assert pruned == 1 and [row.name for row in await engine.flow.all()] == ["ops"]


async def test_keys_and_limits_are_validated_with_the_field_named(engine: Engine) -> None:
    with pytest.raises(InvalidDag, match="concurrency_limit needs a concurrency_key"):
        JobSpec(job_type="t", concurrency_limit=3)
    with pytest.raises(InvalidDag, match="control characters"):
        JobSpec(job_type="t", concurrency_key="a\nb")
    for rate in (0, 5e-324, 1e7):
        with pytest.raises(InvalidLimit, match="rate_per_second must be between"):
            await engine.flow.set(FlowLimit(scope=FlowScope.JOB_TYPE, name="t", rate_per_second=rate))
    with pytest.raises(InvalidLimit, match="burst"):
        await engine.flow.set(FlowLimit(scope=FlowScope.JOB_TYPE, name="t", burst=3))
    stored = await engine.flow.set(FlowLimit(scope=FlowScope.JOB_TYPE, name="t", rate_per_second=2.5))
    assert stored.burst == 3, "a rate alone gets one second's burst"


async def test_a_held_job_is_woken_when_its_key_frees_a_slot(engine: Engine) -> None:
    await _enqueue(engine, "k", 3, limit=1)
    (running,) = await engine.claim(WORKER, limit=3)
    woken: list[list[str]] = []
    engine._wake = lambda types: woken.append(list(types))  # type: ignore[method-assign,assignment]
    await engine.complete(running, None)
    assert woken == [["t"]]


async def test_the_cluster_metrics_show_each_limited_scope_and_what_waits_on_it(engine: Engine) -> None:
    registry = CollectorRegistry()
    refresher = ClusterMetricsRefresher(engine, ClusterMetrics(registry))
    await _enqueue(engine, "tenant", 5, limit=2)
    await engine.flow.set(FlowLimit(scope=FlowScope.JOB_TYPE, name="t", rate_per_second=100))
    await engine.claim(WORKER, limit=5)
    await refresher.run_once()
    key = {"scope": "key", "name": "tenant"}
    assert registry.get_sample_value("conveyor_flow_running_jobs", key) == 2
    assert registry.get_sample_value("conveyor_flow_max_running_jobs", key) == 2
    assert registry.get_sample_value("conveyor_flow_ready_jobs", key) == 3
    kind = {"scope": "job_type", "name": "t"}
    assert registry.get_sample_value("conveyor_flow_max_running_jobs", kind) is None, "a rate, no cap"
    await engine.flow.clear(FlowScope.JOB_TYPE, "t")
    await refresher.run_once()
    assert registry.get_sample_value("conveyor_flow_running_jobs", kind) is None, "a cleared limit's series go"
