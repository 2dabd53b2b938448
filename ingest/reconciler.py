"""The reconciler: conveyor's own guarantee that every upload is processed, whatever the S3 server sends.

Notifications are fast but may be lost (MinIO without its queue drops what it cannot send; AWS promises
at-least-once "typically in seconds"). So one process of the ingest group, elected by a PostgreSQL
advisory lock, sweeps every configured bucket: on an interval, and early when a gap is suspected (the
S3 server reports failed sends, or ingest could not reach Kafka). Each turn (``run_once``) campaigns,
creates the sweeps that are due, and runs sweeps and pending backfills for one slice of time; a long
sweep resumes from its cursor on the next turn, on whichever process leads by then.

It runs beside the Kafka consumer, never in its path: its own transactions, one per listed page.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from minio import Minio

from conveyor.db.records import CompletedSweep, NewSweep, SweepKind, WatchedBucket
from conveyor.ingest.metrics import ReconcileMetrics
from conveyor.ingest.routing import RoutingRules
from conveyor.ingest.settings import IngestSettings, ReconcileSettings
from conveyor.ingest.sweep import SweepRunner
from conveyor.pipeline.engine import Engine
from conveyor.pipeline.engine.errors import StorageError
from conveyor.pipeline.lifecycle.periodic import every
from conveyor.pipeline.storage.server_metrics import NotificationHealth, notification_health
from conveyor.pipeline.storage.settings import S3Settings

log = logging.getLogger(__name__)

LEADERSHIP = "reconciler"
#: After a failed sweep, the next attempt waits this long (or the interval, if shorter).
FAILED_RETRY_SECONDS = 60.0


def runner_name() -> str:
    """This process, as a sweep's ``owner``: host, pid and a nonce (a restarted pid is another runner)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def gap_suspected(seen: NotificationHealth | None, now: NotificationHealth) -> str | None:
    """Why the S3 server's metrics suggest lost notifications since it was last read (None: they do not)."""
    if seen is None:
        return None
    if now.started_at is not None and seen.started_at is not None and now.started_at != seen.started_at:
        return "the S3 server restarted: the notifications it had not sent yet are lost"
    if now.lost > seen.lost:
        return f"the S3 server reports {now.lost - seen.lost:g} more notifications it could not send"
    return None


class Reconciler:
    """``run_once()`` is one leader's turn; ``run(stop)`` repeats it every campaign interval."""

    def __init__(
        self,
        engine: Engine,
        s3_client: Minio,
        rules: RoutingRules,
        s3: S3Settings,
        ingest: IngestSettings,
        settings: ReconcileSettings,
        metrics: ReconcileMetrics,
    ) -> None:
        self.engine, self.s3, self.settings, self.metrics = engine, s3, settings, metrics
        self.leadership = engine.maintenance.leadership(LEADERSHIP)
        self.runner = SweepRunner(engine, s3_client, rules, ingest, settings, metrics, owner=runner_name())
        self._server_seen: NotificationHealth | None = None
        metrics.prime(list(s3.buckets))

    @property
    def targets(self) -> list[tuple[str, str]]:
        """(bucket, prefix) pairs to sweep: the configured prefixes, else every configured bucket whole."""
        if self.settings.prefixes:
            return [(entry.partition("/")[0], entry.partition("/")[2]) for entry in self.settings.prefixes]
        return [(bucket, "") for bucket in self.s3.buckets]

    async def run_once(self) -> bool:
        """Campaign; when leading, note server-reported gaps, create due sweeps, run a slice. Whether leading."""
        leading = await self.leadership.campaign()
        self.metrics.leader.set(1 if leading else 0)
        if leading:
            await self._check_server()
            await self.create_due()
            await self.run_slice()
        return leading

    async def create_due(self, now: datetime | None = None) -> list[int]:
        """Create (or keep) a reconcile sweep for each target that is due; the ids of those created or resumed."""
        watched = {w.bucket: w for w in await self.engine.sweeps.watch(self.buckets)}
        last = await self.engine.sweeps.last_completed(self.buckets)
        now = now or datetime.now(UTC)  # after the watch: a bucket first watched now is due with no grace
        due = []
        for bucket, prefix in self.targets:
            reason = self._due(watched[bucket], last.get((bucket, prefix)), now)
            if reason is not None:
                sweep = NewSweep(kind=SweepKind.RECONCILE, bucket=bucket, prefix=prefix, reason=reason)
                due.append((await self.engine.sweeps.create_or_resume(sweep)).id)
        return due

    def _due(self, watched: WatchedBucket, last: CompletedSweep | None, now: datetime) -> str | None:
        """Why the target must be swept now (None: it need not). A requested sweep waits out the grace
        window first, so the notifications still in flight arrive before it looks."""
        grace = timedelta(seconds=self.settings.grace_seconds)
        if last is not None and last.failed_at is not None and now < last.failed_at + self._retry_after:
            return None  # the last one failed (an S3 error, logged): not again at every turn
        requested = watched.sweep_requested_at
        swept_from = last.started_at if last is not None else None
        if requested is not None and (swept_from is None or requested > swept_from) and now >= requested + grace:
            return f"requested: {watched.request_reason}"
        if last is None or last.finished_at is None:
            return "first sweep" if now >= watched.since + grace else None
        if now >= last.finished_at + timedelta(seconds=self.settings.interval_seconds):
            return "interval"
        return None

    @property
    def _retry_after(self) -> timedelta:
        return timedelta(seconds=min(FAILED_RETRY_SECONDS, self.settings.interval_seconds))

    async def run_slice(self) -> int:
        """Run claimable sweeps (reconcile first, then backfills) for up to ``slice_seconds``; pages run."""
        until = time.monotonic() + self.settings.slice_seconds
        ran = 0
        for kind in (SweepKind.RECONCILE, SweepKind.BACKFILL):
            while time.monotonic() < until:
                sweep_id = await self.engine.sweeps.next_claimable(kind, owner=self.runner.owner)
                if sweep_id is None:
                    break
                after = await self.runner.run(sweep_id, until=until)
                ran += 1
                if after is None or not after.status.is_final:
                    break  # held elsewhere, or the slice ended mid-sweep: next turn resumes it
        return ran

    async def _check_server(self) -> None:
        """Ask for an early sweep when the S3 server's count of undelivered notifications grew, or when it
        restarted (the events still in its memory are gone, and its counters start again from zero)."""
        if not self.settings.server_metrics_path:
            return
        try:
            health = await asyncio.to_thread(notification_health, self.s3, self.settings.server_metrics_path)
        except StorageError as exc:
            log.debug("the S3 server's notification metrics are unavailable: %s", exc)
            return
        self.metrics.server_failed_sends.set(health.lost)
        if (reason := gap_suspected(self._server_seen, health)) is not None:
            log.warning("%s; sweeping early", reason)
            await self.engine.sweeps.request(self.buckets, reason=reason)
        self._server_seen = health

    @property
    def buckets(self) -> Sequence[str]:
        return sorted({bucket for bucket, _ in self.targets})

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await every(self.settings.campaign_interval_seconds, self.run_once, stop, name="reconciler", jitter=0.2)
        finally:
            self.metrics.leader.set(0)
            await self.leadership.resign()
