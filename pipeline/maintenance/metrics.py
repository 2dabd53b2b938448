"""Maintenance metrics, on an explicit registry: every process that campaigns for the leadership has them."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from conveyor.pipeline.engine.maintenance import RescueReport, StatisticsReport


class MaintenanceMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.jobs_rescued = Counter(
            "conveyor_jobs_rescued_total", "Jobs taken back from lost workers by this process (while it led).",
            ["outcome"], registry=registry,
        )  # fmt: skip
        self.leader = Gauge(
            "conveyor_maintenance_leader", "1 while this process leads cluster maintenance (rescue, retention).",
            registry=registry,
        )  # fmt: skip
        self.flow_counts_mended = Counter(
            "conveyor_flow_counts_mended_total",
            "Flow limits whose RUNNING count had drifted from the jobs running, mended by this process.",
            registry=registry,
        )
        self.tables_analyzed = Counter(
            "conveyor_tables_analyzed_total",
            "Busy tables this process analyzed because they outgrew what PostgreSQL had measured of them.",
            ["table"], registry=registry,
        )  # fmt: skip
        for outcome in ("requeued", "failed"):
            self.jobs_rescued.labels(outcome)

    def rescued(self, report: RescueReport) -> None:
        self.jobs_rescued.labels("requeued").inc(report.requeued)
        self.jobs_rescued.labels("failed").inc(report.failed)
        self.flow_counts_mended.inc(report.counts_mended)

    def analyzed(self, report: StatisticsReport) -> None:
        for table in report.analyzed:
            self.tables_analyzed.labels(table).inc()
