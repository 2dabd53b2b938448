"""The engine's door to flow limits: setting and clearing them, reading them with what waits on them,
saying why a ready job waits, and mending their RUNNING counts (the leader's maintenance).

The claim statement itself enforces the limits and the fair share; this facet never claims.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime

from conveyor.db import flow as flow_queries
from conveyor.db.connection import Pool, acquire
from conveyor.db.records import FlowHold, FlowLimit, FlowLimitRow, FlowScope, RecountedScope
from conveyor.pipeline.engine.dag import MAX_CONCURRENCY_KEY_LENGTH
from conveyor.pipeline.engine.errors import InvalidLimit

log = logging.getLogger(__name__)

#: Rates outside these are refused: one start a day at the slowest (slower is a schedule, not a rate, and
#: PostgreSQL's float8 refuses the subnormal values below), a million a second at the fastest.
MIN_RATE = 1 / 86_400
MAX_RATE = 1_000_000.0


def check_limit(limit: FlowLimit) -> FlowLimit:
    """``limit`` if it is one PostgreSQL will hold, else :class:`InvalidLimit` naming the field.

    A rate without a burst gets a burst of one second's starts (at least 1).
    """
    if problem := _limit_problem(limit):
        raise InvalidLimit(problem)
    if limit.rate_per_second is not None and limit.burst is None:
        return replace(limit, burst=max(1, math.ceil(limit.rate_per_second)))
    return limit


def _limit_problem(limit: FlowLimit) -> str | None:
    if limit.scope is FlowScope.JOB_TYPE and not limit.name:
        return "job_type must not be empty"
    if len(limit.name) > MAX_CONCURRENCY_KEY_LENGTH or not limit.name.isprintable():
        return f"name must be printable and at most {MAX_CONCURRENCY_KEY_LENGTH} characters"
    if limit.max_running is not None and limit.max_running <= 0:
        return f"max_running must be > 0 (got {limit.max_running})"
    if limit.rate_per_second is not None and not MIN_RATE <= limit.rate_per_second <= MAX_RATE:
        return f"rate_per_second must be between {MIN_RATE:g} and {MAX_RATE:g} (got {limit.rate_per_second})"
    if limit.burst is not None and (limit.burst <= 0 or limit.rate_per_second is None):
        return "burst must be > 0 and comes with rate_per_second"
    if limit.weight <= 0:
        return f"weight must be > 0 (got {limit.weight})"
    if limit.max_running is None and limit.rate_per_second is None and limit.weight == 1:
        return "set max_running, rate_per_second or a weight other than 1 (or clear the limit)"
    return None


class FlowLimits:
    """``engine.flow``: the limits and weights of concurrency keys and job types."""

    #: How long "no rate limit exists" is believed before asking PostgreSQL again.
    RATE_LIMITED_CACHE_SECONDS = 5.0

    def __init__(self, pool: Pool, *, now: Callable[[], datetime | None]) -> None:
        self._pool = pool
        self._now = now
        self._rate_limited_until = 0.0  # monotonic time until which "no rate limits" is trusted

    async def rate_wait(self, job_types: Sequence[str]) -> float | None:
        """Seconds until a rate limit holding back a ready job of ``job_types`` refills a token, or None.

        Costs nothing while no scope has a rate limit (checked at most every few seconds).
        """
        if time.monotonic() < self._rate_limited_until:
            return None
        async with acquire(self._pool) as conn:
            if not await flow_queries.rate_limited(conn):
                self._rate_limited_until = time.monotonic() + self.RATE_LIMITED_CACHE_SECONDS
                return None
            return await flow_queries.rate_wait(conn, job_types, now=self._now())

    async def set(self, limit: FlowLimit) -> FlowLimit:
        """Set an operator's limit (replacing any before); the limit as stored. Takes effect at the next claim."""
        checked = check_limit(limit)
        async with acquire(self._pool) as conn:
            await flow_queries.set_limit(conn, checked, now=self._now())
        return checked

    async def clear(self, scope: FlowScope, name: str) -> bool:
        """Remove a scope's limits; False when it had none."""
        async with acquire(self._pool) as conn:
            return await flow_queries.clear_limit(conn, scope, name)

    async def all(self) -> list[FlowLimitRow]:
        """Every limited scope with its RUNNING jobs, tokens and the ready jobs waiting on it."""
        async with acquire(self._pool) as conn:
            return await flow_queries.list_limits(conn, now=self._now())

    async def get(self, scope: FlowScope, name: str) -> FlowLimitRow | None:
        """One scope's limits and live counts; None when it has no limit."""
        async with acquire(self._pool) as conn:
            rows = await flow_queries.list_limits(conn, only=(scope, name), now=self._now())
        return rows[0] if rows else None

    async def holds(self, job_id: uuid.UUID) -> list[FlowHold]:
        """Why a ready PENDING job waits: the limits it is held by now (none: it waits for a free worker)."""
        async with acquire(self._pool) as conn:
            return await flow_queries.holds_of_job(conn, job_id, now=self._now())

    async def recount(self) -> list[RecountedScope]:
        """Mend RUNNING counts that drifted from the jobs RUNNING now; each repair is logged."""
        async with acquire(self._pool) as conn, conn.transaction():
            mended = await flow_queries.recount(conn)
        for scope in mended:
            log.warning("flow limit %s %r counted wrong; mended to %d running", scope.scope, scope.name, scope.running)
        return mended

    async def prune(self, *, idle_before: datetime) -> int:
        """Remove the key limits pipelines and API calls set, idle since ``idle_before``."""
        async with acquire(self._pool) as conn:
            return await flow_queries.prune(conn, idle_before=idle_before)
