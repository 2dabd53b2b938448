"""``conveyor run``'s feed: one line per finished pipeline, so a newcomer sees each upload processed.

The line names the object, the pipeline, its outcome and the time from the upload to the last job's end::

    finished s3://uploads/samples/orders.csv  csv  completed (1 job)  0.84 s after upload
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime, timedelta
from typing import TextIO

from conveyor.db.records import PipelineRun
from conveyor.pipeline.engine import Engine
from conveyor.pipeline.lifecycle.periodic import every

#: A job's finished_at is its transaction's start: look this far back so slow commits are not missed.
COMMIT_LAG = timedelta(seconds=2)


def describe(run: PipelineRun) -> str:
    """One line about one finished pipeline run."""
    jobs = f"{run.jobs} job{'s' if run.jobs != 1 else ''}"
    if run.completed == run.jobs:
        outcome = f"completed ({jobs})"
    else:
        parts = [f"{n} {what}" for n, what in ((run.failed, "failed"), (run.cancelled, "cancelled")) if n]
        outcome = f"FAILED ({', '.join(parts)} of {jobs})"
    took = max(0.0, (run.finished_at - run.uploaded_at).total_seconds())
    return f"finished s3://{run.bucket}/{run.key}  {run.pipeline or '-'}  {outcome}  {took:.2f} s after upload"


class PipelineFeed:
    """``run_once()`` prints the pipeline runs finished since the last call; ``run()`` repeats it."""

    def __init__(self, engine: Engine, out: TextIO = sys.stdout, interval_seconds: float = 1.0) -> None:
        self.engine, self.out, self.interval = engine, out, interval_seconds
        self._since: datetime | None = None

    async def run_once(self) -> int:
        """Print what finished since the previous call (the first call only starts the clock)."""
        until = datetime.now(UTC) - COMMIT_LAG
        if self._since is None:
            self._since = until
            return 0
        runs = await self.engine.stats.finished_pipeline_runs(after=self._since, until=until)
        self._since = until
        for run in runs:
            print(describe(run), file=self.out, flush=True)
        return len(runs)

    async def run(self, stop: asyncio.Event) -> None:
        await every(self.interval, self.run_once, stop, name="pipeline feed")
