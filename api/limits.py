"""/api/limits: flow limits of concurrency keys and job types (set, read, clear), with what waits on them."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Request, Response, status

from conveyor.api.context import context_of
from conveyor.api.models import LimitBody, LimitSet, PrintableText, Problem
from conveyor.db.records import FlowLimit, FlowScope
from conveyor.pipeline.engine.dag import MAX_CONCURRENCY_KEY_LENGTH

router = APIRouter(prefix="/api/limits", tags=["limits"])
ScopeName = Literal["key", "job_type"]
#: A key may hold slashes ("uploads/tenant-a"): the rest of the path is the name.
LimitName = Annotated[PrintableText, Path(max_length=MAX_CONCURRENCY_KEY_LENGTH)]


@router.get("", response_model=list[LimitBody])
async def list_limits(request: Request) -> list[LimitBody]:
    """Every limited key and job type, with RUNNING jobs, tokens, and ready jobs waiting on it."""
    return [LimitBody.of(row) for row in await context_of(request).engine.flow.all()]


#: A name holding a line break matches no route (the path's pattern stops at one): 404, as for any path.
UNROUTABLE: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "The name holds a line break: no such resource"}
}


@router.put("/{scope}/{name:path}", response_model=LimitBody, responses={422: {"model": Problem}, **UNROUTABLE})
async def set_limit(scope: ScopeName, name: LimitName, body: LimitSet, request: Request) -> LimitBody:
    """Set (replace) the limits of a key (``key``; '' is not addressable here) or a job type (``job_type``)."""
    flow = context_of(request).engine.flow
    await flow.set(FlowLimit(scope=FlowScope(scope), name=name, max_running=body.max_running,
                             rate_per_second=body.rate_per_second, burst=body.burst, weight=body.weight))  # fmt: skip
    stored = await flow.get(FlowScope(scope), name)
    assert stored is not None  # just set in its own committed statement
    return LimitBody.of(stored)


NO_LIMIT: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "No limit on that scope (or a name holding a line break)"}
}


@router.delete("/{scope}/{name:path}", status_code=status.HTTP_204_NO_CONTENT, responses=NO_LIMIT)
async def clear_limit(scope: ScopeName, name: LimitName, request: Request) -> Response:
    """Remove a scope's limits: its jobs run unlimited, with weight 1."""
    if not await context_of(request).engine.flow.clear(FlowScope(scope), name):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no limit on {scope} {name!r}")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
