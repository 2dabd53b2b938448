"""Worker autoscaling has one query: the Helm chart's KEDA trigger runs the built-in autoscaler's text."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import yaml

from conveyor.db.sql import QUERIES
from conveyor.pipeline.engine import Engine, JobSpec
from tests.helm.chart import LARGE, VALUES, of_kind, render


def without_comments(statement: str) -> str:
    return re.sub(r"(?m)^--.*\n", "", statement).strip()


def keda_queries() -> dict[str, str]:
    """Each worker group's KEDA PostgreSQL query in the large values' rendering, by group name."""
    queries = {}
    for scaled in of_kind(render(VALUES["large"]), "ScaledObject"):
        (trigger,) = scaled["spec"]["triggers"]
        if trigger["type"] == "postgresql":
            queries[scaled["metadata"]["name"].removeprefix("release-conveyor-worker-")] = trigger["metadata"]["query"]
    return queries


def test_the_keda_query_is_the_autoscaler_query_text() -> None:
    groups = {g["name"]: g["jobTypes"] for g in yaml.safe_load(LARGE.read_text())["workers"]["groups"]}
    rendered = keda_queries()
    assert set(rendered) == set(groups)
    for name, job_types in groups.items():
        literal = "'{" + ",".join(job_types) + "}'::text[]"
        assert rendered[name] == without_comments(QUERIES["job_ready_backlog"]).replace("$1::text[]", literal)
    (every_type,) = [m for m in of_kind(render(VALUES["default"]), "ScaledObject")
                     if m["spec"]["triggers"][0]["type"] == "postgresql"]  # fmt: skip
    assert "'{}'::text[]" in every_type["spec"]["triggers"][0]["metadata"]["query"]


async def test_the_keda_query_counts_what_the_autoscaler_counts(engine: Engine) -> None:
    later = datetime.now(UTC) + timedelta(hours=1)
    specs = [JobSpec(job_type="checksum") for _ in range(3)] + [JobSpec(job_type="archive.extract") for _ in range(2)]
    specs += [JobSpec(job_type="checksum", run_at=later)]  # not due: not backlog
    specs += [JobSpec(job_type="other") for _ in range(4)]
    await engine.create_dag(specs)
    await engine.create_dag([JobSpec(job_type="a", name="root"), JobSpec(job_type="inspect", depends_on=["root"])])

    groups = {g["name"]: g["jobTypes"] for g in yaml.safe_load(LARGE.read_text())["workers"]["groups"]}
    async with engine.pool.acquire() as conn:
        for name, query in keda_queries().items():
            keda = await conn.fetchval(query)
            assert keda == await engine.stats.ready_backlog(groups[name]), name
        assert [await conn.fetchval(q) for q in keda_queries().values()] == [3, 2]  # light, heavy
        (every_type,) = [m["spec"]["triggers"][0]["metadata"]["query"] for m in of_kind(render(None), "ScaledObject")
                         if m["spec"]["triggers"][0]["type"] == "postgresql"]  # fmt: skip
        assert await conn.fetchval(every_type) == await engine.stats.ready_backlog() == 10
