"""Declaring jobs and the dependencies between them, checked before anything touches the database."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from conveyor.pipeline.engine.errors import DependencyCycle, InvalidDag


@dataclass(frozen=True)
class SourceObject:
    """The uploaded object a job works on."""

    bucket: str
    key: str
    version: str | None = None
    event_id: int | None = None


@dataclass(frozen=True, init=False)
class JobSpec:
    """One job to create.

    ``name`` identifies the job within its DAG; ``depends_on`` names jobs of the same DAG, or gives the
    ids of jobs that already exist. ``idempotency_key`` makes creation safe to repeat. The defaults are
    :meth:`__init__`'s.
    """

    job_type: str
    payload: dict[str, Any]
    name: str | None
    depends_on: Sequence[str | uuid.UUID]
    priority: int
    max_retries: int
    timeout_ms: int
    run_at: datetime | None
    idempotency_key: str | None
    #: The job's name within its pipeline, when ``name`` must be longer to be unique in a batch of DAGs.
    step: str | None
    #: The pipeline the job belongs to and the object it works on (overriding those given for the DAG).
    pipeline: str | None
    source: SourceObject | None
    #: Fair share and the key's limits go by it; '' is the pool of every job nobody keyed.
    concurrency_key: str
    #: At most this many of the key's jobs RUNNING at once, cluster-wide (sets the key's limit).
    concurrency_limit: int | None

    def __init__(
        self,
        *,
        job_type: str,
        payload: dict[str, Any] | None = None,
        name: str | None = None,
        depends_on: Sequence[str | uuid.UUID] = (),
        priority: int = 0,
        max_retries: int = 3,
        timeout_ms: int = 300_000,
        run_at: datetime | None = None,
        idempotency_key: str | None = None,
        step: str | None = None,
        pipeline: str | None = None,
        source: SourceObject | None = None,
        concurrency_key: str = "",
        concurrency_limit: int | None = None,
    ) -> None:
        """Check the spec (:class:`InvalidDag` names what is wrong); ``payload`` None is an empty one."""
        # One update of the instance dict: a frozen dataclass's own __init__ sets each field through
        # object.__setattr__, and that was 70% of building a spec, the caller's share of bulk enqueue.
        vars(self).update(job_type=job_type, payload={} if payload is None else payload, name=name,
                          depends_on=depends_on, priority=priority, max_retries=max_retries, timeout_ms=timeout_ms,
                          run_at=run_at, idempotency_key=idempotency_key, step=step, pipeline=pipeline,
                          source=source, concurrency_key=concurrency_key,
                          concurrency_limit=concurrency_limit)  # fmt: skip
        if problem := spec_problem(self):
            raise InvalidDag(problem)


def spec_problem(spec: JobSpec) -> str | None:
    """What is wrong with ``spec`` on its own, or None (its DAG is checked by :func:`topological_order`)."""
    if not spec.job_type:
        return "job_type must not be empty"
    if spec.max_retries < 0:
        return f"max_retries must be >= 0 (got {spec.max_retries})"
    if spec.timeout_ms <= 0:
        return f"timeout_ms must be > 0 (got {spec.timeout_ms})"
    if spec.concurrency_key or spec.concurrency_limit is not None:  # the unkeyed, unlimited job needs no check
        return concurrency_problem(spec.concurrency_key, spec.concurrency_limit)
    return None


#: Longer keys are refused: a key names a tenant or a resource, not a payload.
MAX_CONCURRENCY_KEY_LENGTH = 200


def concurrency_problem(key: str, limit: int | None) -> str | None:
    """What is wrong with a job's concurrency key and limit, or None (shared by every door that takes them)."""
    if len(key) > MAX_CONCURRENCY_KEY_LENGTH:
        return f"concurrency_key is {len(key)} characters long (at most {MAX_CONCURRENCY_KEY_LENGTH})"
    if not key.isprintable():
        return "concurrency_key must not contain control characters"
    if limit is not None and limit <= 0:
        return f"concurrency_limit must be > 0 (got {limit})"
    if limit is not None and not key:
        return "concurrency_limit needs a concurrency_key"
    return None


def topological_order(specs: Sequence[JobSpec]) -> list[int]:
    """Indexes of ``specs`` with every job after the jobs of the DAG it depends on.

    Raises :class:`InvalidDag` for duplicate or unknown names and :class:`DependencyCycle` for a cycle.
    Dependencies given as UUIDs refer to existing jobs and are checked against the database later.
    """
    index = _names(specs)
    if not any(spec.depends_on for spec in specs):
        return list(range(len(specs)))  # a batch of independent jobs (bulk enqueue): already in order
    children: dict[int, list[int]] = {i: [] for i in range(len(specs))}
    indegree = [0] * len(specs)
    for i, spec in enumerate(specs):
        for parent in spec.depends_on:
            if isinstance(parent, str):
                if parent not in index:
                    raise InvalidDag(f"job {spec.name or i!r} depends on {parent!r}, which is not in the DAG")
                children[index[parent]].append(i)
                indegree[i] += 1
    order = [i for i in range(len(specs)) if indegree[i] == 0]
    for position in range(len(specs)):
        if position >= len(order):
            stuck = sorted(str(specs[i].name) for i in range(len(specs)) if indegree[i] > 0)
            raise DependencyCycle(f"dependency cycle among {stuck}")
        for child in children[order[position]]:
            indegree[child] -= 1
            if indegree[child] == 0:
                order.append(child)
    return order


def inherited_priorities(specs: Sequence[JobSpec], order: Sequence[int]) -> list[int]:
    """Each job's priority raised to the highest priority of any job of the DAG waiting on it.

    ``order`` is :func:`topological_order`'s; walking it backwards visits children before parents.
    """
    priorities = [spec.priority for spec in specs]
    if not any(spec.depends_on for spec in specs):
        return priorities  # nothing waits on anything: a batch of independent jobs keeps its own priorities
    index = _names(specs)
    for child in reversed(order):
        for parent in specs[child].depends_on:
            if isinstance(parent, str):
                priorities[index[parent]] = max(priorities[index[parent]], priorities[child])
    return priorities


def _names(specs: Sequence[JobSpec]) -> dict[str, int]:
    index: dict[str, int] = {}
    for i, spec in enumerate(specs):
        if spec.name is None:
            continue
        if spec.name in index:
            raise InvalidDag(f"job name {spec.name!r} is used twice in one DAG")
        index[spec.name] = i
    return index
