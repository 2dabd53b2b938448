"""Backfills: start pipelines for objects that already exist (a rule added, a bucket imported).

A backfill is a sweep of kind ``backfill`` over ``s3://bucket/prefix``: it lists the objects (a first
pass counts them, for progress), and for each one written at or after ``since`` starts the pipelines
routing gives it that it has not run yet (only ``pipeline`` when one is named). Progress and cursor are
in PostgreSQL, committed with each page's jobs: a killed backfill resumes where it stopped (starting the
same command again, or by the reconciler leader), and a second backfill of the same objects creates
nothing. ``dry_run`` counts what it would start and writes no jobs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime

from conveyor.db.records import NewSweep, SweepKind, SweepRow
from conveyor.ingest.errors import RoutingError
from conveyor.ingest.routing import RoutingRules
from conveyor.ingest.sweep import SweepRunner
from conveyor.pipeline.engine import Engine

#: How often a backfill run by another process is polled for progress.
FOLLOW_INTERVAL_SECONDS = 0.5


class BackfillRejected(RoutingError):
    """The backfill names a bucket or pipeline conveyor does not know; ``field`` says which."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, kw_only=True)
class BackfillRequest:
    bucket: str
    prefix: str = ""
    pipeline: str | None = None
    since: datetime | None = None
    dry_run: bool = False

    def validate(self, rules: RoutingRules, buckets: Collection[str]) -> BackfillRequest:
        """The request with ``since`` in UTC; raises :class:`BackfillRejected` naming the bad field."""
        if self.bucket not in buckets:
            raise BackfillRejected("bucket", f"bucket {self.bucket!r} is not one of conveyor's ({', '.join(buckets)})")
        if self.pipeline is not None and self.pipeline not in {p.name for p in rules.pipeline}:
            raise BackfillRejected("pipeline", f"no pipeline is named {self.pipeline!r}")
        since = self.since
        if since is not None and since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        return BackfillRequest(bucket=self.bucket, prefix=self.prefix, pipeline=self.pipeline, since=since,
                               dry_run=self.dry_run)  # fmt: skip

    def as_sweep(self) -> NewSweep:
        return NewSweep(kind=SweepKind.BACKFILL, bucket=self.bucket, prefix=self.prefix, pipeline=self.pipeline,
                        since=self.since, dry_run=self.dry_run, reason="backfill")  # fmt: skip


@dataclass(frozen=True)
class Progress:
    """A backfill's progress as a person reads it."""

    sweep: SweepRow
    rate_per_second: float | None
    eta_seconds: float | None

    @classmethod
    def of(cls, sweep: SweepRow, now: datetime | None = None) -> Progress:
        now = now or datetime.now(UTC)
        end = sweep.finished_at or now
        elapsed = (end - sweep.started_at).total_seconds() if sweep.started_at else 0.0
        rate = sweep.objects_listed / elapsed if elapsed > 0 and sweep.objects_listed else None
        remaining = (sweep.objects_total or 0) - sweep.objects_listed
        eta = remaining / rate if rate and sweep.objects_total is not None and not sweep.status.is_final else None
        return cls(sweep, rate, max(0.0, eta) if eta is not None else None)


async def start(engine: Engine, request: BackfillRequest) -> SweepRow:
    """The unfinished backfill with these parameters (to resume), else a new PENDING one."""
    return await engine.sweeps.create_or_resume(request.as_sweep())


async def run_here(
    engine: Engine, runner: SweepRunner, sweep_id: int, *, on_progress: Callable[[SweepRow], None]
) -> SweepRow:
    """Run the backfill in this process to its end; if another live process holds it, follow its progress."""
    while True:
        after = await runner.run(sweep_id, on_page=on_progress)
        if after is not None and after.status.is_final:
            return after
        current = await engine.sweeps.get(sweep_id)
        assert current is not None
        on_progress(current)
        if current.status.is_final:
            return current
        await asyncio.sleep(FOLLOW_INTERVAL_SECONDS)
