"""/api/workers: register, heartbeat, list, health: for HTTP workers and for operators."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, HTTPException, Request, status

from conveyor.api.context import context_of
from conveyor.api.models import (
    HealthSample,
    Heartbeat,
    Problem,
    RegisterWorker,
    WorkerBody,
    WorkerHealth,
    WorkerRegistered,
)  # fmt: skip
from conveyor.db.records import NewWorker

router = APIRouter(prefix="/api/workers", tags=["workers"])
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": Problem, "description": "No live worker has that id"}}


@router.post("", status_code=status.HTTP_201_CREATED, response_model=WorkerRegistered)
async def register_worker(body: RegisterWorker, request: Request) -> WorkerRegistered:
    worker = NewWorker(id=uuid.uuid4(), name=body.worker_name, worker_type=body.worker_type,
                       capabilities=body.capabilities, max_concurrent_jobs=body.max_concurrent_jobs)  # fmt: skip
    row = await context_of(request).engine.workers.register(worker)
    return WorkerRegistered(worker_id=row.id)


@router.get("", response_model=list[WorkerBody])
async def list_workers(request: Request, include_stopped: bool = False) -> list[WorkerBody]:
    workers = await context_of(request).engine.workers.all(include_stopped=include_stopped)
    return [WorkerBody.of(w) for w in workers]


@router.post("/{worker_id}/heartbeat", response_model=Heartbeat, responses=NOT_FOUND)
async def heartbeat(worker_id: uuid.UUID, request: Request) -> Heartbeat:
    """The worker is alive: its jobs' leases are extended; the answer lists jobs it should stop."""
    context = context_of(request)
    if not await context.engine.workers.heartbeat(worker_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no live worker {worker_id} (unknown, stopped or lost)")
    held = await context.engine.heartbeat_worker(worker_id)
    return Heartbeat(worker_id=worker_id, cancel_requested=[job_id for job_id, stop in held.items() if stop])


@router.get("/{worker_id}/health", response_model=WorkerHealth, responses=NOT_FOUND)
async def worker_health(worker_id: uuid.UUID, request: Request) -> WorkerHealth:
    workers = context_of(request).engine.workers
    worker = await workers.get(worker_id)
    if worker is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no worker {worker_id}")
    samples = await workers.recent_health(worker_id, limit=20)
    return WorkerHealth(worker=WorkerBody.of(worker), recent=[HealthSample(**s) for s in samples])
