"""Flow limits: every limited concurrency key and job type with what runs and waits on it; operators set and
clear them here (the same limits as ``conveyor limits`` and ``/api/limits``)."""

from __future__ import annotations

import math
from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, Request, status
from fastapi.responses import RedirectResponse, Response

from conveyor.api.console.auth import Action, Form, operator, viewer
from conveyor.api.console.rendering import render
from conveyor.api.console.session import Session
from conveyor.api.context import context_of
from conveyor.db.records import FlowLimit, FlowScope
from conveyor.pipeline.engine import InvalidLimit

router = APIRouter(prefix="/ui")
#: The same bounds as the HTTP API's (``LimitSet``).
MAX_COUNT = 1_000_000
Number = TypeVar("Number", int, float)


class FieldProblem(ValueError):
    """A form field that does not hold what it should; the message names it."""


async def _page(request: Request, *, problem: str | None = None, form: dict[str, str] | None = None,
                status_code: int = 200) -> Response:  # fmt: skip
    limits = await context_of(request).engine.flow.all()
    return render(request, "limits.html", status_code=status_code, page="limits", limits=limits, problem=problem,
                  form=form or {}, scopes=list(FlowScope))  # fmt: skip


@router.get("/limits")
async def limits_page(request: Request, session: Annotated[Session, Depends(viewer)]) -> Response:
    return await _page(request)


@router.post("/limits")
async def set_limit(request: Request, action: Annotated[Action, Depends(operator)]) -> Response:
    """Set (replace) a key's or a job type's limits; a field it cannot take is a 422 naming it."""
    fields = ("scope", "name", "max_running", "rate_per_second", "burst", "weight")
    form = {name: (action.form.first(name) or "").strip() for name in fields}
    try:
        await context_of(request).engine.flow.set(limit_of(action.form))
    except (FieldProblem, InvalidLimit) as exc:
        return await _page(request, problem=str(exc), form=form, status_code=status.HTTP_422_UNPROCESSABLE_ENTITY)
    return RedirectResponse("/ui/limits", status_code=status.HTTP_303_SEE_OTHER)


@router.post("/limits/clear")
async def clear_limit(request: Request, action: Annotated[Action, Depends(operator)]) -> Response:
    """Remove a scope's limits: its jobs run unlimited, with weight 1."""
    try:
        scope = FlowScope(action.form.first("scope") or "")
    except ValueError:
        return await _page(request, problem="scope: key or job_type", status_code=422)
    await context_of(request).engine.flow.clear(scope, action.form.first("name") or "")
    return RedirectResponse("/ui/limits", status_code=status.HTTP_303_SEE_OTHER)


def limit_of(form: Form) -> FlowLimit:
    """The limit a form sets; :class:`FieldProblem` names a field it cannot read (the engine checks the rest)."""
    try:
        scope = FlowScope(form.first("scope") or "")
    except ValueError:
        raise FieldProblem("scope: key or job_type") from None
    rate = _number(form, "rate_per_second", float)
    if rate is not None and not math.isfinite(rate):
        raise FieldProblem("rate_per_second: a finite number")
    return FlowLimit(scope=scope, name=(form.first("name") or "").strip(), max_running=_count(form, "max_running"),
                     rate_per_second=rate, burst=_count(form, "burst"), weight=_count(form, "weight") or 1)  # fmt: skip


def _count(form: Form, field: str) -> int | None:
    value = _number(form, field, int)
    if value is not None and not 1 <= value <= MAX_COUNT:
        raise FieldProblem(f"{field}: a whole number from 1 to {MAX_COUNT:,}")
    return value


def _number(form: Form, field: str, kind: type[Number]) -> Number | None:
    text = (form.first(field) or "").strip()
    if not text:
        return None
    try:
        return kind(text)
    except ValueError:
        raise FieldProblem(f"{field}: not a number: {text[:40]!r}") from None
