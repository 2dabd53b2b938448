"""An object's pipelines drawn as DAGs: each run's jobs in columns by depth, edges from parents to children."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from conveyor.db.records import JobRow

NODE_WIDTH, NODE_HEIGHT, COLUMN_GAP, ROW_GAP, MARGIN = 150, 44, 40, 14, 4


@dataclass(frozen=True)
class Node:
    job: JobRow
    x: int
    y: int

    @property
    def label(self) -> str:
        return (self.job.step or self.job.job_type)[:20]


@dataclass(frozen=True)
class Edge:
    x1: int
    y1: int
    x2: int
    y2: int


@dataclass(frozen=True)
class Drawing:
    """One pipeline run (the jobs one event started for one pipeline), laid out to draw."""

    title: str
    width: int
    height: int
    nodes: list[Node]
    edges: list[Edge]

    @property
    def settled(self) -> bool:
        return all(n.job.status.is_final for n in self.nodes)


def draw(jobs: Sequence[JobRow]) -> list[Drawing]:
    """A drawing per (event, pipeline), in the order their first jobs were created."""
    runs: dict[tuple[int | None, str | None], list[JobRow]] = defaultdict(list)
    for job in sorted(jobs, key=lambda j: j.id):
        runs[(job.object_event_id, job.pipeline)].append(job)
    return [_layout(run, f"{pipeline or 'jobs'} · event {event}" if event else pipeline or "jobs")
            for (event, pipeline), run in runs.items()]  # fmt: skip


def _layout(run: list[JobRow], title: str) -> Drawing:
    depth = _depths(run)
    columns: dict[int, list[JobRow]] = defaultdict(list)
    for job in run:
        columns[depth[job.id]].append(job)
    nodes = {job.id: Node(job, MARGIN + d * (NODE_WIDTH + COLUMN_GAP), MARGIN + row * (NODE_HEIGHT + ROW_GAP))
             for d, column in columns.items() for row, job in enumerate(column)}  # fmt: skip
    edges = [_edge(nodes[parent], node) for node in nodes.values() for parent in node.job.depends_on if parent in nodes]
    width = MARGIN * 2 + len(columns) * NODE_WIDTH + (len(columns) - 1) * COLUMN_GAP
    tallest = max(len(c) for c in columns.values())
    height = MARGIN * 2 + tallest * NODE_HEIGHT + (tallest - 1) * ROW_GAP
    return Drawing(title, width, height, list(nodes.values()), edges)


def _depths(run: list[JobRow]) -> dict[uuid.UUID, int]:
    """The longest path from a root of the run to each job (parents outside the run are not counted)."""
    in_run = {job.id: job for job in run}
    depth: dict[uuid.UUID, int] = {}

    def of(job_id: uuid.UUID, seen: frozenset[uuid.UUID]) -> int:
        if job_id not in depth:
            parents = [p for p in in_run[job_id].depends_on if p in in_run and p not in seen]
            depth[job_id] = 1 + max((of(p, seen | {job_id}) for p in parents), default=-1)
        return depth[job_id]

    for job in run:
        of(job.id, frozenset())
    return depth


def _edge(parent: Node, child: Node) -> Edge:
    return Edge(parent.x + NODE_WIDTH, parent.y + NODE_HEIGHT // 2, child.x, child.y + NODE_HEIGHT // 2)
