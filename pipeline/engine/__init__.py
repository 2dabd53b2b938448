"""The job engine: the one door to jobs, workers and object events in PostgreSQL.

Every other room moves jobs through :class:`Engine` (or an :class:`EngineTransaction` it opens); nothing
outside this room and ``conveyor.db`` calls the query modules. Wake-ups go out after commit, by themselves.
"""

from __future__ import annotations
