"""One transaction through the engine: what ingest, dead-letter replay and the API do atomically.

``async with engine.transaction() as tx`` opens it; every verb of ``tx`` runs on the same PostgreSQL
transaction, which commits when the block ends without an exception. The job types its verbs made
ready are published as one wake-up after the commit, by the engine: callers never publish themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from conveyor.db import events as event_queries
from conveyor.db import jobs as job_queries
from conveyor.db import sweeps as sweep_queries
from conveyor.db import uploads as upload_queries
from conveyor.db.connection import Connection
from conveyor.db.records import (
    CancelledJob,
    DeadLetterRow,
    Identity,
    JobStatus,
    NewDeadLetter,
    NewObjectEvent,
    NewUpload,
    ObjectVersion,
    Removal,
    SweepPage,
    SweepRow,
)
from conveyor.pipeline.engine import creation
from conveyor.pipeline.engine.blueprint import Run
from conveyor.pipeline.engine.creation import DagResult
from conveyor.pipeline.engine.dag import JobSpec, SourceObject


class EngineTransaction:
    """The verbs that may share a transaction. Not thread-safe; one task uses it at a time."""

    def __init__(self, conn: Connection, *, now: datetime | None) -> None:
        self._conn, self._now = conn, now
        #: Job types made ready so far: the wake-up published after commit.
        self.ready_types: list[str] = []

    async def create_dag(
        self, specs: Sequence[JobSpec], *, source: SourceObject | None = None, pipeline: str | None = None
    ) -> DagResult:
        """Create jobs and their dependencies; repeat calls with the same idempotency keys create nothing."""
        created = await creation.create_dag(self._conn, specs, source=source, pipeline=pipeline, now=self._now)
        self.ready_types += created.ready_types
        return created.dag

    async def start_runs(self, runs: Sequence[Run]) -> None:
        """Start blueprints on objects: each run's jobs and edges, as ``create_dag`` of its specs would."""
        self.ready_types += await creation.start_runs(self._conn, runs, now=self._now)

    async def record_events(self, events: Sequence[NewObjectEvent], *, topic: str) -> dict[Identity, int]:
        """Record upload events once by identity; the ids of those new here (a known identity is skipped)."""
        return await event_queries.insert_many(self._conn, events, topic=topic)

    async def record_uploads(self, uploads: Sequence[NewUpload], *, tolerance_seconds: float) -> set[ObjectVersion]:
        """Record the uploads new events bring (one per object version); those that are new uploads.

        An upload already recorded (the same etag and time, within ``tolerance_seconds``), or older than
        the recorded one, is not new: its event is kept, and starts nothing.
        """
        if not uploads:
            return set()
        return await upload_queries.record_many(self._conn, uploads, tolerance_seconds=tolerance_seconds)

    async def record_removals(self, removals: Sequence[Removal]) -> list[CancelledJob]:
        """Mark removed objects, and cancel their unfinished jobs with the removal as the reason.

        BLOCKED and PENDING jobs end CANCELLED now; RUNNING ones are asked to stop, with the same reason.
        """
        if not removals:
            return []
        await upload_queries.remove_many(self._conn, removals)
        cancelled = await job_queries.cancel_for_removed(self._conn, removals, now=self._now)
        done = [job.id for job in cancelled if job.status is JobStatus.CANCELLED]
        if done:
            await job_queries.cancel_descendants(self._conn, done, kind="object_removed",
                                                 message="its object was removed", now=self._now)  # fmt: skip
        return cancelled

    async def add_pipelines(
        self, bucket: str, wanted: Sequence[tuple[str, str, list[str]]]
    ) -> dict[ObjectVersion, tuple[int | None, list[str]]]:
        """Give recorded uploads more pipelines (a backfill); per upload changed, the pipelines added."""
        if not wanted:
            return {}
        return await upload_queries.add_pipelines(self._conn, bucket, wanted)

    async def advance_sweep(
        self, sweep_id: int, page: SweepPage, *, owner: str, lease_seconds: float
    ) -> SweepRow | None:
        """Record a listed page and the cursor after it; None when ``owner`` no longer holds the sweep
        (the caller must then roll back, so the page's jobs go with it)."""
        return await sweep_queries.advance(self._conn, sweep_id, page, owner=owner, lease_seconds=lease_seconds)

    async def record_dead_letters(self, letters: Sequence[NewDeadLetter]) -> list[int]:
        """Keep ``letters``; one already kept (same topic, partition and offset) is skipped."""
        return await event_queries.insert_dead_letters(self._conn, letters)

    async def lock_dead_letter(self, letter_id: int) -> DeadLetterRow | None:
        """The dead letter, locked until this transaction ends (so two replays of it serialise)."""
        return await event_queries.lock_dead_letter(self._conn, letter_id)

    async def mark_replayed(self, letter_id: int, *, error: str | None) -> DeadLetterRow:
        """Count a replay of a locked letter: replayed when ``error`` is None, else still open with ``error``."""
        return await event_queries.mark_replayed(self._conn, letter_id, error=error)
