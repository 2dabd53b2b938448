"""``conveyor jobs list | show | retry | cancel``: a terminal view of the queue."""

from __future__ import annotations

import argparse
import asyncio
import json
import uuid
from typing import Any

from conveyor import runtime
from conveyor.commands import limits
from conveyor.db.records import JobFilter, JobRow, JobStatus
from conveyor.settings import Settings


def register(commands: Any) -> None:
    jobs = commands.add_parser("jobs", help="list, show, retry and cancel jobs")
    actions = jobs.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="newest jobs first")
    listing.add_argument("--status", choices=[s.value for s in JobStatus])
    listing.add_argument("--type", dest="job_type")
    listing.add_argument("--bucket")
    listing.add_argument("--key")
    listing.add_argument("--limit", type=int, default=30)
    listing.set_defaults(handler=_list)
    waiting = actions.add_parser("waiting", help="ready jobs held back by flow limits, per key and job type")
    waiting.set_defaults(handler=limits.show)
    for name, text in (("show", "one job in full"), ("retry", "run a FAILED or CANCELLED job again"),
                       ("cancel", "cancel a job (a running one stops at its next heartbeat)")):  # fmt: skip
        action = actions.add_parser(name, help=text)
        action.add_argument("job_id", type=uuid.UUID)
        action.set_defaults(handler=_one, verb=name)


def _list(settings: Settings, args: argparse.Namespace) -> int:
    where = JobFilter(status=JobStatus(args.status) if args.status else None, job_type=args.job_type,
                      source_bucket=args.bucket, source_key=args.key)  # fmt: skip

    async def fetch() -> list[JobRow]:
        async with runtime.open_engine(settings) as engine:
            return await engine.list_jobs(where, limit=args.limit)

    jobs = asyncio.run(fetch())
    if not jobs:
        print("no jobs")
    for job in jobs:
        source = f"s3://{job.source_bucket}/{job.source_key}" if job.source_key else "-"
        last_error = f"  last error: {job.errors[-1]['message']}" if job.errors and job.status != "COMPLETED" else ""
        key = f"  key {job.concurrency_key}" if job.concurrency_key else ""
        print(f"{job.id}  {job.status.value:<9} {job.job_type:<16} try {job.attempts}/{job.max_retries + 1}  "
              f"{job.created_at:%H:%M:%S}  {source}{key}{last_error}")  # fmt: skip
    return 0


def _one(settings: Settings, args: argparse.Namespace) -> int:
    async def act() -> Any:
        async with runtime.open_engine(settings) as engine:
            if args.verb == "retry":
                return {"job_id": str(args.job_id), "status": (await engine.retry(args.job_id)).value}
            if args.verb == "cancel":
                return {"job_id": str(args.job_id), "status": (await engine.cancel(args.job_id)).value}
            job = await engine.get(args.job_id)
            shown = dict(vars(job))
            if job.status is JobStatus.PENDING:
                shown["held_by"] = [hold.describe() for hold in await engine.flow.holds(job.id)]
            return shown

    print(json.dumps(asyncio.run(act()), indent=2, default=str))
    return 0
