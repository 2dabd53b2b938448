"""Statistics: the busy tables are measured again as soon as they outgrow what PostgreSQL knows of them.

PostgreSQL plans a statement from its last measure of each table (ANALYZE, VACUUM) and keeps the plan.
Autovacuum measures again on its own clock, a minute between visits to a database by default: on a fresh
install taking load, the plans made while the job table was a few pages read the whole table, once per
completed batch, until then (bench/RESULTS.md). The maintenance leader checks each tick (a look at the
catalog) and analyzes when a table grew past twice its measured size. A table doubles only so many times,
so this adds a few ANALYZEs while tables grow and none once retention holds them steady.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from conveyor.pipeline.engine import Engine
from conveyor.pipeline.engine.maintenance import StatisticsReport
from conveyor.pipeline.lifecycle.periodic import every

log = logging.getLogger(__name__)

#: Growth below this many pages (8 KiB each; about 1,500 job rows) is left to autovacuum: plans for a table
#: this small cost little whichever way they read it.
SLACK_PAGES = 64


class StatisticsKeeper:
    """``run_once()`` analyzes the busy tables when one outgrew its statistics; ``run()`` repeats it."""

    def __init__(
        self,
        engine: Engine,
        *,
        interval_seconds: float = 2.0,
        slack_pages: int = SLACK_PAGES,
        on_refresh: Callable[[StatisticsReport], None] = lambda report: None,
    ) -> None:
        self.engine, self.interval, self.slack_pages, self.on_refresh = (
            engine,
            interval_seconds,
            slack_pages,
            on_refresh,
        )
        #: False once ANALYZE was seen to change nothing (conveyor's role does not own the tables).
        self.active = True

    async def run_once(self) -> StatisticsReport:
        """Analyze the busy tables if any outgrew its statistics; what was analyzed. Stops (and says why,
        once) when ANALYZE leaves a table outgrown: it then skips tables it may not analyze, each tick."""
        if not self.active:
            return StatisticsReport()
        report = await self.engine.maintenance.refresh_statistics(slack_pages=self.slack_pages)
        if report.analyzed:
            log.info("tables %s outgrew their statistics: analyzed", list(report.analyzed))
            self.on_refresh(report)
        if report.still_outgrown:
            self.active = False
            log.warning("ANALYZE left %s unmeasured (the role conveyor connects as must own them); autovacuum "
                        "measures them on its own schedule", list(report.still_outgrown))  # fmt: skip
        return report

    async def run(self, stop: asyncio.Event) -> None:
        await every(self.interval, self.run_once, stop, name="statistics", jitter=0.2)
