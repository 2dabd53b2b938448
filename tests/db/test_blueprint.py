"""Blueprints: a run creates exactly the jobs and edges ``create_dag`` of its specs creates."""

from __future__ import annotations

from typing import Any

import pytest

from conveyor.db.connection import Pool, acquire
from conveyor.db.records import FlowScope
from conveyor.pipeline.engine import Engine
from conveyor.pipeline.engine.blueprint import Blueprint, Run
from conveyor.pipeline.engine.dag import JobSpec, SourceObject
from conveyor.pipeline.engine.errors import DependencyCycle, InvalidDag

COMPARED = ("job_type", "payload", "status", "priority", "max_retries", "timeout_ms", "pending_parents", "pipeline",
            "step", "source_bucket", "source_key", "source_version", "concurrency_key", "run_at")  # fmt: skip

DIAMOND = Blueprint.of("diamond", [
    JobSpec(name="fetch", job_type="checksum", payload={"params": {"a": 1}}, max_retries=5),
    JobSpec(name="left", job_type="inspect", depends_on=["fetch"], timeout_ms=9_000),
    JobSpec(name="right", job_type="csv.profile", depends_on=["fetch"], priority=7, concurrency_key="t",
            concurrency_limit=3),
    JobSpec(name="join", job_type="merge", depends_on=["left", "right"]),
])  # fmt: skip


async def rows_by_step(pool: Pool, key: str) -> dict[str, dict[str, Any]]:
    async with acquire(pool) as conn:
        rows = await conn.fetch("SELECT * FROM job_rows WHERE source_key = $1", key)
        edges = await conn.fetch(
            "SELECT p.step AS parent, c.step AS child FROM job_dependencies d JOIN job_rows p ON p.id = d.parent_id"
            " JOIN job_rows c ON c.id = d.child_id WHERE c.source_key = $1", key)  # fmt: skip
    found = {r["step"]: {name: r[name] for name in COMPARED} for r in rows}
    for edge in edges:
        found[edge["child"]].setdefault("parents", set()).add(edge["parent"])
    return found


async def test_a_run_creates_what_create_dag_of_its_specs_creates(engine: Engine, pool: Pool) -> None:
    by_run = Run(DIAMOND, SourceObject("b", "run.csv", "v1"), {"lineage_depth": 2}, ("", "", "tenant-a", ""))
    by_dag = Run(DIAMOND, SourceObject("b", "dag.csv", "v1"), {"lineage_depth": 2}, ("", "", "tenant-a", ""))
    async with engine.transaction() as tx:
        await tx.start_runs([by_run])
        assert tx.ready_types == ["checksum"], "only the root is ready; the wake-up names its type"
    await engine.create_dag(by_dag.specs("scope"))
    run_rows, dag_rows = await rows_by_step(pool, "run.csv"), await rows_by_step(pool, "dag.csv")
    for rows in (run_rows, dag_rows):
        for row in rows.values():
            row.pop("source_key")
    assert run_rows == dag_rows
    assert run_rows["fetch"]["priority"] == 7, "inherited from the step waiting on it, as in any DAG"
    assert run_rows["join"]["parents"] == {"left", "right"} and run_rows["join"]["status"] == "BLOCKED"
    assert run_rows["fetch"]["payload"] == {"params": {"a": 1}, "lineage_depth": 2}


async def test_a_keyed_step_with_a_limit_sets_its_keys_limit(engine: Engine) -> None:
    run = Run(DIAMOND, SourceObject("b", "k.csv"), {}, ("", "", "tenant-b", ""))
    async with engine.transaction() as tx:
        await tx.start_runs([run])
    limit = await engine.flow.get(FlowScope.KEY, "tenant-b")
    assert limit is not None and limit.max_running == 3


@pytest.mark.parametrize(
    ("specs", "error"),
    [([JobSpec(name="a", job_type="t", depends_on=["b"]), JobSpec(name="b", job_type="t", depends_on=["a"])],
      DependencyCycle),
     ([JobSpec(job_type="t")], InvalidDag),
     ([JobSpec(name="a", job_type="t", idempotency_key="k")], InvalidDag),
     ([JobSpec(name="a", job_type="t", source=SourceObject("b", "k"))], InvalidDag)],
)  # fmt: skip
def test_a_blueprint_is_one_checked_dag_without_per_run_fields(specs: list[JobSpec], error: type[Exception]) -> None:
    with pytest.raises(error):
        Blueprint.of("p", specs)
