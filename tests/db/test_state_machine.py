"""A model of the job state machine, driven by Hypothesis against real PostgreSQL.

Rules create DAGs, claim, heartbeat, complete, fail (retryable or not), snooze, cancel, acknowledge a
cancel, retry, rescue (by letting leases lapse) and prune, in any order Hypothesis finds. After every step
the invariants are read back from the database:

- a job holds a lease exactly while it is RUNNING (one worker, one expiry);
- the attempts it has spent never decrease;
- ``pending_parents`` equals the number of its parents that have not completed;
- COMPLETED stays COMPLETED; FAILED and CANCELLED stay so unless an operator retried them;
- a job is ready (PENDING) only once every parent completed, and is claimed only then;
- every descendant of a FAILED or CANCELLED job is CANCELLED;
- flow limits (a capped key, a rate-limited key, a capped job type): no claim passes a cap or spends a
  token it has not got, and each limit's RUNNING count equals its jobs RUNNING, whatever moved them.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    MultipleResults,
    RuleBasedStateMachine,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)

from conveyor.db import connection
from conveyor.db.records import FlowLimit, FlowScope, JobFilter, JobRow, JobStatus
from conveyor.db.settings import PostgresSettings
from conveyor.pipeline.engine import Engine, Failure, JobConflict, JobSpec
from conveyor.pipeline.engine.settings import RetentionSettings
from conveyor.pipeline.maintenance.rescuer import Rescuer
from conveyor.pipeline.maintenance.retention import Pruner
from tests.db.conftest import TEST_RETRY, FakeClock

T = TypeVar("T")
FINAL = {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED}
WORKER = uuid.uuid4()


class JobMachine(RuleBasedStateMachine):
    database: PostgresSettings  # set by the test before the machine runs

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.clock = FakeClock()
        self.pool = self.run(connection.create_pool(self.database))
        self.engine = Engine(self.pool, retry=TEST_RETRY, lease_grace_seconds=5, clock=self.clock)
        self.kind = f"m{uuid.uuid4().hex[:8]}"  # this example's jobs only: examples share the database
        self.parents: dict[uuid.UUID, set[uuid.UUID]] = {}
        self.held: dict[uuid.UUID, JobRow] = {}  # RUNNING jobs as the worker holds them
        self.spent: dict[uuid.UUID, int] = {}
        self.seen: dict[uuid.UUID, JobStatus] = {}
        self.revived: set[uuid.UUID] = set()
        self.pruned: set[uuid.UUID] = set()
        # Jobs draw their key from these; the first is capped, the second rate-limited, the type capped.
        self.keys = [f"{self.kind}-capped", f"{self.kind}-rated", ""]
        for limit in (FlowLimit(scope=FlowScope.KEY, name=self.keys[0], max_running=1),
                      FlowLimit(scope=FlowScope.KEY, name=self.keys[1], rate_per_second=0.5, burst=2),
                      FlowLimit(scope=FlowScope.JOB_TYPE, name=self.kind, max_running=3)):  # fmt: skip
            self.run(self.engine.flow.set(limit))

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(work)

    def teardown(self) -> None:
        self.run(self.pool.close())
        self.loop.close()

    jobs = Bundle("jobs")

    # -- rules -----------------------------------------------------------------------------------------

    @rule(target=jobs, size=st.integers(1, 4), edges=st.sets(st.tuples(st.integers(0, 3), st.integers(0, 3))),
          keys=st.lists(st.integers(0, 2), min_size=4, max_size=4))  # fmt: skip
    def create_dag(self, size: int, edges: set[tuple[int, int]], keys: list[int]) -> MultipleResults[uuid.UUID]:
        depends = {i: sorted({a for a, b in edges if a < b == i and a < size}) for i in range(size)}
        specs = [JobSpec(job_type=self.kind, name=f"j{i}", depends_on=[f"j{a}" for a in depends[i]], max_retries=1,
                         timeout_ms=1000, concurrency_key=self.keys[keys[i]]) for i in range(size)]  # fmt: skip
        ids = self.run(self.engine.create_dag(specs)).ids
        for i in range(size):
            self.parents[ids[f"j{i}"]] = {ids[f"j{a}"] for a in depends[i]}
        return multiple(*ids.values())

    @rule(limit=st.integers(1, 5))
    def claim(self, limit: int) -> None:
        for job in self.run(self.engine.claim(WORKER, job_types=[self.kind], limit=limit)):
            parents = self._rows(self.parents[job.id])
            assert all(p.status is JobStatus.COMPLETED for p in parents.values()), "claimed before its parents"
            self.held[job.id] = job

    @rule()
    def heartbeat(self) -> None:
        answer = self.run(self.engine.heartbeat([(j.id, j.attempts) for j in self.held.values()]))
        for job_id in set(self.held) - set(answer):
            self.held.pop(job_id)  # no longer ours (rescued, or cancelled and acknowledged elsewhere)

    @precondition(lambda self: self.held)
    @rule(data=st.data())
    def complete(self, data: st.DataObject) -> None:
        job = self._pick_held(data)
        self.run(self.engine.complete(job, {"ok": True}))

    @precondition(lambda self: self.held)
    @rule(data=st.data(), retryable=st.booleans())
    def fail(self, data: st.DataObject, retryable: bool) -> None:
        job = self._pick_held(data)
        self.run(self.engine.fail(Failure(job, "boom", retryable=retryable)))

    @precondition(lambda self: self.held)
    @rule(data=st.data(), delay=st.sampled_from([0.0, 30.0]))
    def snooze(self, data: st.DataObject, delay: float) -> None:
        self.run(self.engine.requeue([self._pick_held(data)], delay_seconds=delay))

    @rule(job_id=jobs)
    def cancel(self, job_id: uuid.UUID) -> None:
        if job_id not in self.pruned:
            self.run(self.engine.cancel(job_id))

    @precondition(lambda self: self.held)
    @rule(data=st.data())
    def acknowledge_cancel(self, data: st.DataObject) -> None:
        self.run(self.engine.acknowledge_cancel(self._pick_held(data)))

    @rule(job_id=jobs)
    def retry(self, job_id: uuid.UUID) -> None:
        if job_id in self.pruned:
            return
        try:
            self.run(self.engine.retry(job_id))
        except JobConflict:
            return  # only FAILED or CANCELLED jobs can be retried
        self.revived |= {job_id, *self._descendants(job_id)}

    @rule(seconds=st.sampled_from([1, 15, 60]))
    def time_passes_and_the_rescuer_runs(self, seconds: int) -> None:
        self.clock.advance(seconds)
        self.run(Rescuer(self.engine).run_once())

    @rule()
    def retention(self) -> None:
        self.clock.advance(120)
        self.run(Pruner(self.engine, RetentionSettings(completed_after_seconds=60, failed_after_seconds=60)).run_once())
        self.pruned |= set(self.parents) - set(self._rows(self.parents.keys()))

    def _pick_held(self, data: st.DataObject) -> JobRow:
        job: JobRow = data.draw(st.sampled_from(sorted(self.held.values(), key=lambda j: j.id)))
        self.held.pop(job.id)
        return job

    # -- reading back ----------------------------------------------------------------------------------

    def _rows(self, ids: Any) -> dict[uuid.UUID, JobRow]:
        wanted = set(ids)
        rows = self.run(self.engine.list_jobs(JobFilter(job_type=self.kind), limit=10_000))
        return {row.id: row for row in rows if row.id in wanted}

    def _descendants(self, job_id: uuid.UUID) -> set[uuid.UUID]:
        children = {c for c, parents in self.parents.items() if job_id in parents}
        return children.union(*(self._descendants(c) for c in children))

    @invariant()
    def the_database_agrees_with_the_rules(self) -> None:
        rows = self._rows(self.parents)
        for job_id, job in rows.items():
            holds = job.worker_id is not None and job.lease_expires_at is not None
            assert holds == (job.status is JobStatus.RUNNING), f"lease and status disagree: {job}"
            spent = job.attempts - (1 if job.status is JobStatus.RUNNING else 0)
            assert spent >= self.spent.get(job_id, 0), "attempts spent went down"
            self.spent[job_id] = spent
            parents = [rows.get(p) for p in self.parents[job_id]]
            unfinished = sum(1 for p in parents if p is not None and p.status is not JobStatus.COMPLETED)
            if job.status in {JobStatus.BLOCKED, JobStatus.PENDING}:
                assert job.pending_parents == unfinished, f"pending_parents {job.pending_parents} != {unfinished}"
            if job.status in {JobStatus.PENDING, JobStatus.RUNNING, JobStatus.COMPLETED}:
                assert unfinished == 0, f"{job.status} while a parent has not completed"
            before = self.seen.get(job_id)
            if before is JobStatus.COMPLETED:
                assert job.status is JobStatus.COMPLETED, "COMPLETED is forever"
            elif before in FINAL and job_id not in self.revived:
                assert job.status is before, f"{before} became {job.status} without a retry"
            if job.status in {JobStatus.FAILED, JobStatus.CANCELLED}:
                for descendant in self._descendants(job_id) & rows.keys():
                    assert rows[descendant].status is JobStatus.CANCELLED, "a descendant of a failed job lives on"
        self.seen.update({job_id: job.status for job_id, job in rows.items()})
        self.revived.clear()

    @invariant()
    def flow_limits_hold_and_count_what_runs(self) -> None:
        running = [j for j in self._rows(self.parents).values() if j.status is JobStatus.RUNNING]
        limits = {row.name: row for row in self.run(self.engine.flow.all()) if row.name in {*self.keys, self.kind}}
        capped, rated, kind = limits[self.keys[0]], limits[self.keys[1]], limits[self.kind]
        assert capped.running == sum(j.concurrency_key == capped.name for j in running) <= 1
        assert rated.running == sum(j.concurrency_key == rated.name for j in running)
        assert kind.running == len(running) <= 3, "the job type's cap"
        assert rated.tokens is not None and rated.tokens >= 0, "a start without a token"


@pytest.mark.timeout(600)
def test_the_job_state_machine_keeps_its_invariants(database: PostgresSettings) -> None:
    JobMachine.database = database
    run_state_machine_as_test(JobMachine, settings=settings(max_examples=40, stateful_step_count=30, deadline=None,
                                                            suppress_health_check=list(HealthCheck)))  # fmt: skip
