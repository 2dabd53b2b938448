"""``conveyor backfill s3://bucket/prefix``: start pipelines for objects that already exist.

Prints progress (objects listed of the total, rate, ETA) while it runs. Killed, the same command resumes
the unfinished backfill from its cursor; run again after it finished, it starts nothing that already ran.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from typing import Any, TextIO
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry

from conveyor import runtime
from conveyor.db.records import SweepRow, SweepStatus
from conveyor.ingest import backfill
from conveyor.ingest.backfill import BackfillRejected, BackfillRequest, Progress
from conveyor.ingest.metrics import ReconcileMetrics
from conveyor.ingest.reconciler import runner_name
from conveyor.ingest.routing import load_rules
from conveyor.ingest.sweep import SweepRunner
from conveyor.pipeline.storage.client import s3_client
from conveyor.settings import Settings


def register(commands: Any) -> None:
    parser = commands.add_parser("backfill", help="start pipelines for objects already in a bucket")
    parser.add_argument("url", help="s3://bucket or s3://bucket/prefix")
    parser.add_argument("--pipeline", help="only this pipeline (for the objects that have not run it)")
    parser.add_argument("--since", type=_date, help="only objects written at or after this date (ISO 8601)")
    parser.add_argument("--dry-run", action="store_true", help="count what would start; create nothing")
    parser.set_defaults(handler=_backfill)


def _date(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 date (e.g. 2026-11-30 or 2026-11-30T12:00)"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _backfill(settings: Settings, args: argparse.Namespace) -> int:
    url = urlsplit(args.url)
    if url.scheme != "s3" or not url.netloc:
        print("conveyor: expected s3://bucket or s3://bucket/prefix", file=sys.stderr)
        return 2
    rules = load_rules(settings.ingest.pipelines_file)
    request = BackfillRequest(bucket=url.netloc, prefix=url.path.lstrip("/"), pipeline=args.pipeline,
                              since=args.since, dry_run=args.dry_run)  # fmt: skip
    try:
        request = request.validate(rules, settings.s3.buckets)
    except BackfillRejected as exc:
        print(f"conveyor: {exc}", file=sys.stderr)
        return 2
    done = asyncio.run(_run(settings, request))
    return 0 if done.status is SweepStatus.COMPLETED else 1


async def _run(settings: Settings, request: BackfillRequest) -> SweepRow:
    rules = load_rules(settings.ingest.pipelines_file)
    async with runtime.open_engine(settings) as engine:
        sweep = await backfill.start(engine, request)
        resumed = f" (resuming from {sweep.cursor_key!r})" if sweep.cursor_key else ""
        print(f"backfill #{sweep.id} of s3://{sweep.bucket}/{sweep.prefix}{resumed}", file=sys.stderr)
        runner = SweepRunner(engine, s3_client(settings.s3), rules, settings.ingest, settings.reconcile,
                             ReconcileMetrics(CollectorRegistry()), owner=runner_name())  # fmt: skip
        bar = ProgressBar(sys.stderr)
        done = await backfill.run_here(engine, runner, sweep.id, on_progress=bar.show)
        bar.show(done, final=True)
    return done


class ProgressBar:
    """One line of progress, redrawn in place on a terminal (one line per update elsewhere, throttled)."""

    def __init__(self, out: TextIO, *, every_seconds: float = 0.5) -> None:
        self.out, self.every, self._shown_at = out, every_seconds, 0.0
        self._tty = out.isatty()

    def show(self, sweep: SweepRow, *, final: bool = False) -> None:
        now = asyncio.get_running_loop().time()
        if not final and now - self._shown_at < (self.every if self._tty else 5 * self.every):
            return
        self._shown_at = now
        line = describe(Progress.of(sweep))
        self.out.write(("\r\x1b[2K" if self._tty else "") + line + ("\n" if final or not self._tty else ""))
        self.out.flush()


def describe(progress: Progress) -> str:
    """``listed/total (pct) objects, rate/s, ETA m:ss; started, jobs`` with the status when it ended."""
    s = progress.sweep
    total = f"{s.objects_total:,}" if s.objects_total is not None else "counting"
    pct = f" ({100 * s.objects_listed / s.objects_total:.0f}%)" if s.objects_total else ""
    rate = f", {progress.rate_per_second:,.0f}/s" if progress.rate_per_second else ""
    eta = f", ETA {int(progress.eta_seconds) // 60}:{int(progress.eta_seconds) % 60:02}" if progress.eta_seconds else ""
    verb = "would start" if s.dry_run else "started"
    status = "" if s.status is SweepStatus.RUNNING else f" [{s.status.value}{': ' + s.error if s.error else ''}]"
    return (f"{s.objects_listed:,}/{total} objects{pct}{rate}{eta}; {verb} {s.objects_started:,} "
            f"objects, {s.jobs_created:,} jobs{status}")  # fmt: skip
