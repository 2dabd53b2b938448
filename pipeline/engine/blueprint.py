"""Blueprints: a DAG checked and ordered once, then started many times, each run on its own object.

Ingest starts the same few pipelines for thousands of uploads a second. Checking each upload's DAG again
(names, cycles, inherited priorities, every field of every job) cost more than PostgreSQL's work for the
same rows (bench/RESULTS.md), so a pipeline becomes a :class:`Blueprint` when its rules load, and each
upload becomes a :class:`Run`: the blueprint, the object, and what differs per upload.

A run creates exactly the jobs and edges ``create_dag(run.specs(scope))`` would, and the tests hold the
two to that.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from conveyor.db.records import JobStatus, NewJob
from conveyor.pipeline.engine.dag import JobSpec, SourceObject, inherited_priorities, topological_order
from conveyor.pipeline.engine.errors import InvalidDag
from conveyor.pipeline.engine.ids import uuid7_many


@dataclass(frozen=True, slots=True)
class Step:
    """One job of a blueprint, with everything that is the same in every run."""

    name: str
    job_type: str
    payload: Mapping[str, Any]
    #: Positions (in the blueprint's order) of the steps this one waits for.
    parents: tuple[int, ...]
    #: The declared priority raised to that of any step waiting on it (as a DAG's creation does).
    priority: int
    max_retries: int
    timeout_ms: int
    concurrency_limit: int | None


@dataclass(frozen=True, slots=True)
class Blueprint:
    """A pipeline's steps in dependency order (parents first)."""

    pipeline: str
    steps: tuple[Step, ...]

    @classmethod
    def of(cls, pipeline: str, specs: Sequence[JobSpec]) -> Blueprint:
        """Check ``specs`` as one DAG (raising :class:`InvalidDag` or ``DependencyCycle``) and order it.

        Each spec needs a name, its ``depends_on`` names other specs, and it carries no per-run field
        (source, idempotency key, run_at, concurrency key): those belong to a :class:`Run`.
        """
        per_run = [s.name or "?" for s in specs if not s.name or s.source or s.idempotency_key or s.run_at
                   or not all(isinstance(p, str) for p in s.depends_on)]  # fmt: skip
        if problems := per_run:
            raise InvalidDag(f"a blueprint's jobs need names and no per-run fields: {problems}")
        order = topological_order(specs)
        priorities = inherited_priorities(specs, order)
        position = {specs[i].name: at for at, i in enumerate(order)}
        steps = tuple(
            Step(name=str(s.name), job_type=s.job_type, payload=dict(s.payload),
                 parents=tuple(position[str(p)] for p in s.depends_on), priority=priorities[i],
                 max_retries=s.max_retries, timeout_ms=s.timeout_ms, concurrency_limit=s.concurrency_limit)
            for i, s in ((i, specs[i]) for i in order)
        )  # fmt: skip
        return cls(pipeline, steps)


@dataclass(frozen=True, slots=True)
class Run:
    """One start of a blueprint on one object."""

    blueprint: Blueprint
    source: SourceObject
    #: Merged into every step's payload (ingest puts the upload's lineage depth here).
    payload: Mapping[str, Any] = field(default_factory=dict)
    #: Each step's concurrency key, in the blueprint's order (empty: no step is keyed).
    concurrency_keys: tuple[str, ...] = ()

    def key_of(self, position: int) -> str:
        return self.concurrency_keys[position] if self.concurrency_keys else ""

    def specs(self, scope: str) -> list[JobSpec]:
        """The run as plain job specs named ``scope/step``: what it creates, for callers that want to see it."""
        return [
            JobSpec(name=f"{scope}/{s.name}", step=s.name, job_type=s.job_type, payload={**s.payload, **self.payload},
                    depends_on=[f"{scope}/{self.blueprint.steps[p].name}" for p in s.parents], priority=s.priority,
                    max_retries=s.max_retries, timeout_ms=s.timeout_ms, pipeline=self.blueprint.pipeline,
                    source=self.source, concurrency_key=self.key_of(at), concurrency_limit=s.concurrency_limit)
            for at, s in enumerate(self.blueprint.steps)
        ]  # fmt: skip


@dataclass
class RunRows:
    """The rows of a batch of runs: jobs and edges (parent, child)."""

    jobs: list[NewJob] = field(default_factory=list)
    parents: list[uuid.UUID] = field(default_factory=list)
    children: list[uuid.UUID] = field(default_factory=list)
    ready_types: list[str] = field(default_factory=list)
    limits: dict[str, int] = field(default_factory=dict)


def rows_of(runs: Sequence[Run]) -> RunRows:
    """Every job and edge of ``runs``: fresh ids, no idempotency keys (a run is started once by its caller)."""
    rows = RunRows()
    ids = iter(uuid7_many(sum(len(run.blueprint.steps) for run in runs)))
    for run in runs:
        _add_run(rows, run, [next(ids) for _ in run.blueprint.steps])
    return rows


def _add_run(rows: RunRows, run: Run, ids: list[uuid.UUID]) -> None:
    source, pipeline = run.source, run.blueprint.pipeline
    for at, step in enumerate(run.blueprint.steps):
        key = run.key_of(at)
        rows.jobs.append(NewJob(
            ids[at], step.job_type, {**step.payload, **run.payload},
            JobStatus.BLOCKED if step.parents else JobStatus.PENDING, step.priority, step.max_retries,
            step.timeout_ms, len(step.parents), pipeline, step.name, source.event_id, source.bucket, source.key,
            source.version, key,
        ))  # fmt: skip
        rows.parents += [ids[p] for p in step.parents]
        rows.children += [ids[at]] * len(step.parents)
        if not step.parents:
            rows.ready_types.append(step.job_type)
        if step.concurrency_limit is not None and key:
            rows.limits[key] = min(step.concurrency_limit, rows.limits.get(key, step.concurrency_limit))
