"""The status code and detail each domain error answers with, for FastAPI's handlers and the fast path alike."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from conveyor.db.errors import ServiceUnavailable
from conveyor.pipeline.engine.errors import InvalidDag, InvalidLimit, JobConflict, JobNotFound, UnknownParent

#: Each error the routes let escape, by the status it answers with.
STATUS_OF: dict[type[Exception], int] = {
    JobNotFound: 404,
    UnknownParent: 404,
    InvalidDag: 422,
    InvalidLimit: 422,
    JobConflict: 409,
    ServiceUnavailable: 503,
}
DOMAIN_ERRORS = tuple(STATUS_OF)


def problem(error: Exception) -> JSONResponse:
    """``{"detail": ...}`` with the status of the nearest class of ``error`` in :data:`STATUS_OF`."""
    code = next(STATUS_OF[kind] for kind in type(error).__mro__ if kind in STATUS_OF)
    detail = f"dependsOn: {error}" if isinstance(error, UnknownParent) else str(error)
    return JSONResponse({"detail": detail}, status_code=code)


def install(app: FastAPI) -> None:
    """Answer every error in :data:`STATUS_OF` with its :func:`problem`."""

    async def handle(request: Request, error: Exception) -> JSONResponse:
        return problem(error)

    for kind in STATUS_OF:
        app.add_exception_handler(kind, handle)
