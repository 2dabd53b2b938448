"""The job engine: the one door to jobs, workers and object events in PostgreSQL.

Every other room moves jobs through :class:`Engine` (or an :class:`EngineTransaction` it opens); nothing
outside this room and ``conveyor.db`` calls the query modules. Wake-ups go out after commit, by themselves.
"""

from __future__ import annotations

from conveyor.pipeline.engine.creation import DagResult
from conveyor.pipeline.engine.dag import JobSpec, SourceObject
from conveyor.pipeline.engine.engine import Engine, Failure, FailureKind, JobResult, system_clock
from conveyor.pipeline.engine.errors import (
    DependencyCycle,
    InvalidDag,
    InvalidLimit,
    JobConflict,
    JobNotFound,
    UnknownParent,
)
from conveyor.pipeline.engine.transaction import EngineTransaction

__all__ = [
    "DagResult",
    "DependencyCycle",
    "Engine",
    "EngineTransaction",
    "Failure",
    "FailureKind",
    "InvalidDag",
    "InvalidLimit",
    "JobConflict",
    "JobNotFound",
    "JobResult",
    "JobSpec",
    "SourceObject",
    "UnknownParent",
    "system_clock",
]
