"""The Grafana dashboard, built with Grafana's typed SDK: ``python -m conveyor.deploy.grafana.dashboard``.

It writes ``dashboards/conveyor.json``, which Grafana provisioning (compose), the Helm chart's ConfigMap and the
tests read; a test proves the committed file is what this module builds. Nothing at run time imports it.

Three template variables let one dashboard serve every deployment: ``datasource`` (any Prometheus),
``namespace`` and ``instance`` (every conveyor series is filtered by them; "All" also matches series that have
no such label, as on the local stack), and ``job_type`` (on the series that carry it).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.builders.dashboard import Dashboard, DatasourceVariable, QueryVariable
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef, GridPos, VariableRefresh

OUTPUT = Path(__file__).resolve().parent / "dashboards" / "conveyor.json"
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
SCOPE = 'namespace=~"$namespace", instance=~"$instance"'
#: conveyor's series labelled by job type: the ``job_type`` variable filters these, and only these.
TYPED_METRICS = frozenset({
    "conveyor_jobs_completed_total", "conveyor_jobs_failed_total", "conveyor_jobs_retried_total",
    "conveyor_jobs_cancelled_total", "conveyor_job_wait_seconds_bucket", "conveyor_job_run_seconds_bucket",
    "conveyor_upload_to_result_seconds_bucket", "conveyor_queue_depth_jobs", "conveyor_queue_oldest_ready_age_seconds",
})  # fmt: skip
_METRIC = re.compile(r"\b(conveyor_[a-z0-9_]+)(\{)?")

Panel = stat.Panel | timeseries.Panel


def scoped(expr: str) -> str:
    """``expr`` with the variables' matchers on every conveyor series (MinIO's series are left as they are)."""

    def matchers(found: re.Match[str]) -> str:
        name = found.group(1)
        labels = SCOPE + (', job_type=~"$job_type"' if name in TYPED_METRICS else "")
        return f"{name}{{{labels}" + (", " if found.group(2) else "}")

    return _METRIC.sub(matchers, expr)


def _query(expr: str, legend: str | None, ref: str) -> prometheus.Dataquery:
    query = prometheus.Dataquery().expr(scoped(expr)).ref_id(ref).datasource(DATASOURCE)
    return query.legend_format(legend) if legend else query


def stat_panel(title: str, expr: str, *, unit: str = "short", about: str = "") -> stat.Panel:
    """A single figure: the current value of ``expr``."""
    panel = stat.Panel().title(title).description(about).datasource(DATASOURCE).unit(unit)
    return panel.with_target(_query(expr, None, "A"))


def series_panel(
    title: str, queries: Sequence[tuple[str, str]], *, unit: str = "short", about: str = "", wide: bool = False
) -> timeseries.Panel:
    """A time series panel, one line per (expr, legend); ``wide`` takes the whole row."""
    panel = timeseries.Panel().title(title).description(about).datasource(DATASOURCE).unit(unit)
    panel.span(24 if wide else 12)
    for ref, (expr, legend) in zip("ABCDEFGH", queries, strict=False):
        panel = panel.with_target(_query(expr, legend, ref))
    return panel


def panels() -> list[Panel]:
    """Every panel, in reading order: the figures first, then the charts two by two."""
    figure, chart = stat_panel, series_panel
    return [
        figure(
            "Workers alive", "max(conveyor_workers_alive)", about="Workers ACTIVE or DRAINING (from their heartbeats)."
        ),
        figure(
            "Slots busy / total", "sum(conveyor_worker_slots_busy) / sum(conveyor_worker_slots)", unit="percentunit"
        ),
        figure("Ready backlog", 'sum(conveyor_queue_depth_jobs{status="PENDING"})'),
        figure("Oldest ready job", "max(conveyor_queue_oldest_ready_age_seconds)", unit="s"),
        figure("Open dead letters", "max(conveyor_dead_letters_open)"),
        figure(
            "Running past lease",
            "max(conveyor_jobs_running_past_lease)",
            about="Should be 0: otherwise no rescuer runs.",
        ),
        chart(
            "Throughput in (events) and out (jobs)",
            [
                ("sum(rate(conveyor_ingest_events_consumed_total[1m]))", "events consumed/s"),
                ("sum(rate(conveyor_ingest_jobs_created_total[1m]))", "jobs created/s"),
                ("sum(rate(conveyor_jobs_completed_total[1m]))", "jobs completed/s"),
            ],
            unit="ops",
        ),
        chart(
            "Backlog by status and type",
            [("sum by (status, job_type) (conveyor_queue_depth_jobs)", "{{status}} {{job_type}}")],
        ),
        chart(
            "Latency: upload to result, ready to claimed, event to job (p50/p95/p99)",
            [
                (
                    "histogram_quantile(0.5, sum by (le) (rate(conveyor_upload_to_result_seconds_bucket[5m])))",
                    "upload→result p50",
                ),
                (
                    "histogram_quantile(0.95, sum by (le) (rate(conveyor_upload_to_result_seconds_bucket[5m])))",
                    "upload→result p95",
                ),
                (
                    "histogram_quantile(0.99, sum by (le) (rate(conveyor_upload_to_result_seconds_bucket[5m])))",
                    "upload→result p99",
                ),
                (
                    "histogram_quantile(0.99, sum by (le) (rate(conveyor_job_wait_seconds_bucket[5m])))",
                    "ready→claimed p99",
                ),
                (
                    "histogram_quantile(0.99, sum by (le) (rate(conveyor_ingest_event_to_job_seconds_bucket[5m])))",
                    "event→job p99",
                ),
            ],
            unit="s",
        ),
        chart(
            "Run time by type (p50/p95/p99)",
            [
                (
                    "histogram_quantile(0.5, sum by (le, job_type) (rate(conveyor_job_run_seconds_bucket[5m])))",
                    "p50 {{job_type}}",
                ),
                (
                    "histogram_quantile(0.95, sum by (le, job_type) (rate(conveyor_job_run_seconds_bucket[5m])))",
                    "p95 {{job_type}}",
                ),
                (
                    "histogram_quantile(0.99, sum by (le, job_type) (rate(conveyor_job_run_seconds_bucket[5m])))",
                    "p99 {{job_type}}",
                ),
            ],
            unit="s",
        ),
        chart(
            "Failures, retries, rescues and dead letters",
            [
                ("sum by (job_type) (rate(conveyor_jobs_failed_total[5m]))", "failed {{job_type}}"),
                ("sum by (job_type, kind) (rate(conveyor_jobs_retried_total[5m]))", "retried {{job_type}} ({{kind}})"),
                ("sum by (outcome) (rate(conveyor_jobs_rescued_total[5m]))", "rescued ({{outcome}})"),
                ("sum by (reason) (rate(conveyor_ingest_dead_letters_total[5m]))", "dead-lettered ({{reason}})"),
            ],
            unit="ops",
        ),
        chart(
            "Kafka consumer lag by partition",
            [("sum by (partition) (conveyor_ingest_consumer_lag_messages)", "partition {{partition}}")],
        ),
        chart(
            "Workers and slots",
            [
                ("max(conveyor_workers_alive)", "workers alive"),
                ("sum(conveyor_worker_slots)", "slots"),
                ("sum(conveyor_worker_slots_busy)", "slots busy"),
                ("max(conveyor_worker_heartbeat_age_seconds)", "stalest heartbeat (s)"),
                ("sum by (direction) (increase(conveyor_autoscaler_decisions_total[10m]))", "autoscaler {{direction}}"),
            ],
        ),
        chart(
            "Per job type: completed/s",
            [("sum by (job_type) (rate(conveyor_jobs_completed_total[5m]))", "{{job_type}}")],
            unit="ops",
        ),
        chart(
            "Ingest batches and duplicates",
            [
                ("sum(rate(conveyor_ingest_duplicate_events_total[5m]))", "duplicates skipped/s"),
                ("sum(rate(conveyor_ingest_unrouted_events_total[5m]))", "unrouted/s"),
                (
                    "histogram_quantile(0.5, sum by (le) (rate(conveyor_ingest_batch_messages_bucket[5m])))",
                    "batch size p50",
                ),
            ],
        ),
        chart(
            "HTTP API requests by route and code",
            [("sum by (route, code) (rate(conveyor_http_requests_total[5m]))", "{{route}} {{code}}")],
            unit="reqps",
        ),
        chart(
            "MinIO notifications",
            [
                ("sum(minio_notify_target_queue_length)", "queued notifications"),
                ("sum(increase(minio_notify_events_skipped_total[5m]))", "skipped (lost!)"),
            ],
        ),
        chart(
            "Background task failures and the maintenance leader",
            [
                ("sum by (task) (increase(conveyor_background_task_failures_total[5m]))", "{{task}} failures"),
                ("sum(conveyor_maintenance_leader)", "maintenance leaders"),
            ],
            about=(
                "Side tasks that raised and were restarted (their tracebacks are in the process's log), and how "
                "many processes lead maintenance (exactly 1 is healthy)."
            ),
        ),
        chart(
            "Completeness: uploads found by sweeps, not by notifications",
            [
                (
                    "sum by (bucket) (increase(conveyor_reconcile_objects_missing_total[5m]))",
                    "found missing {{bucket}}",
                ),
                (
                    (
                        "sum(increase(minio_notify_target_failed_events[5m])) + "
                        "sum(increase(minio_notify_events_skipped_total[5m]))"
                    ),
                    "MinIO failed sends",
                ),
            ],
            about=(
                "Objects a reconcile sweep found with no recorded upload (notifications that never arrived), by "
                "bucket, beside what MinIO says it failed to send. Both should be 0; equal when MinIO dropped them."
            ),
        ),
        chart(
            "Sweeps: time since the last complete one, objects listed, backfills",
            [
                (
                    "time() - max by (bucket) (conveyor_reconcile_last_complete_sweep_timestamp_seconds)",
                    "seconds since the last sweep of {{bucket}}",
                ),
                ("sum by (kind) (rate(conveyor_reconcile_objects_listed_total[5m]))", "{{kind}} objects listed/s"),
                ("sum(conveyor_backfill_remaining_objects)", "backfill: objects left"),
                (
                    (
                        "histogram_quantile(0.95, sum by (le) "
                        '(rate(conveyor_reconcile_sweep_duration_seconds_bucket{kind="reconcile"}[1h])))'
                    ),
                    "sweep duration p95 (s)",
                ),
            ],
            about=(
                "Per bucket, how long ago a reconcile sweep last covered it whole (alert: ConveyorSweepsStalled); "
                "objects listed per second by sweeps and backfills; objects the running backfill has yet to list."
            ),
        ),
        chart(
            "Flow limits: running against the cap, jobs held back",
            [
                ("sum by (scope, name) (conveyor_flow_running_jobs)", "{{scope}} {{name}} running"),
                ("max by (scope, name) (conveyor_flow_max_running_jobs)", "{{scope}} {{name}} cap"),
                ("sum by (scope, name) (conveyor_flow_ready_jobs)", "{{scope}} {{name}} waiting"),
                ("max by (scope, name) (conveyor_flow_oldest_ready_age_seconds)", "{{scope}} {{name}} oldest wait (s)"),
            ],
            about=(
                "Per limited concurrency key and job type: RUNNING jobs beside its cap, and the ready jobs waiting "
                "on it (held back while running is at the cap, or its rate's tokens are spent) with the oldest "
                "one's wait. conveyor limits / conveyor jobs waiting show the same."
            ),
            wide=True,
        ),
    ]


def variables() -> list[DatasourceVariable | QueryVariable]:
    def label(name: str, title: str, series: str) -> QueryVariable:
        variable = QueryVariable(name).label(title).datasource(DATASOURCE).query(f"label_values({series}, {name})")
        return variable.multi(True).include_all(True).all_value(".*").refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)

    return [
        DatasourceVariable("datasource").label("Data source").type("prometheus"),
        label("namespace", "Namespace", '{__name__=~"conveyor_.+"}'),
        label("instance", "Instance", '{__name__=~"conveyor_.+", namespace=~"$namespace"}'),
        label("job_type", "Job type", '{__name__=~"conveyor_jobs_completed_total|conveyor_queue_depth_jobs"}'),
    ]


def dashboard() -> dict[str, Any]:
    """The dashboard as Grafana's JSON model."""
    board = (Dashboard("conveyor").uid("conveyor").tags(["conveyor"]).editable().refresh("10s")
             .time("now-1h", "now").timezone("browser"))  # fmt: skip
    for variable in variables():
        board = board.with_variable(variable)
    every_panel = panels()
    for number, (panel, place) in enumerate(zip(every_panel, layout(every_panel), strict=True), start=1):
        board = board.with_panel(panel.id(number).grid_pos(place))
    built: dict[str, Any] = json.loads(json.dumps(board.build(), cls=JSONEncoder))
    return built


def layout(items: Sequence[Panel]) -> list[GridPos]:
    """Left to right, top to bottom on Grafana's 24-column grid: figures 4 wide and 4 high, charts 8 high."""
    places, x, y, row_height = [], 0, 0, 0
    for item in items:
        width, height = (4, 4) if isinstance(item, stat.Panel) else (_width(item), 8)
        if x + width > 24:
            x, y = 0, y + row_height
        places.append(GridPos(x=x, y=y, w=width, h=height))
        x, row_height = x + width, height
    return places


def _width(panel: timeseries.Panel) -> int:
    place = panel.build().grid_pos
    return place.w if place is not None else 12


def render() -> str:
    return json.dumps(dashboard(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    OUTPUT.write_text(render())
    print(f"wrote {OUTPUT}", file=sys.stderr)
