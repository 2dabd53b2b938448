"""What the S3 server itself reports about its notifications (MinIO's Prometheus endpoint).

MinIO counts each event it failed to send or queue (``minio_notify_target_failed_events``) and each it
dropped from a full in-memory queue (``minio_notify_events_skipped_total``): the events conveyor never
got. Other servers have no such endpoint; reading it is then switched off by its setting.
"""

from __future__ import annotations

from dataclasses import dataclass

import urllib3
from prometheus_client.parser import text_string_to_metric_families

from conveyor.pipeline.engine.errors import StorageError
from conveyor.pipeline.storage.settings import S3Settings

#: The counters of notifications the server did not deliver (as family names: the parser reads MinIO's
#: ``minio_notify_target_failed_events`` counter as the sample ``..._total``).
LOST_NOTIFICATION_FAMILIES = frozenset({"minio_notify_target_failed_events", "minio_notify_events_skipped"})
#: When each server process started: a new value means a restart, which loses the events in its memory.
START_TIME_FAMILY = "minio_node_process_starttime_seconds"


@dataclass(frozen=True)
class NotificationHealth:
    """What the server says of its notifications: those it could not deliver, and when it (last) started."""

    lost: float
    started_at: float | None


def lost_notifications(settings: S3Settings, path: str, *, timeout_seconds: float = 2.0) -> float:
    """The server's count of notifications it failed to send or dropped, since it started.

    Raises :class:`StorageError` when the endpoint cannot be read (not MinIO, or not public).
    """
    return notification_health(settings, path, timeout_seconds=timeout_seconds).lost


def notification_health(settings: S3Settings, path: str, *, timeout_seconds: float = 2.0) -> NotificationHealth:
    """Undelivered notifications and the latest process start time, from one read of the endpoint.

    Raises :class:`StorageError` when the endpoint cannot be read (not MinIO, or not public).
    """
    http = urllib3.PoolManager(timeout=urllib3.Timeout(total=timeout_seconds), retries=False)
    try:
        response = http.request("GET", settings.endpoint + path)
    except urllib3.exceptions.HTTPError as exc:
        raise StorageError(f"reading the S3 server's metrics at {path}: {exc}") from exc
    if response.status != 200:
        raise StorageError(f"reading the S3 server's metrics at {path}: HTTP {response.status}")
    families = list(text_string_to_metric_families(response.data.decode("utf-8", errors="replace")))
    lost = sum(sample.value for f in families if f.name in LOST_NOTIFICATION_FAMILIES for sample in f.samples)
    starts = [sample.value for f in families if f.name == START_TIME_FAMILY for sample in f.samples]
    return NotificationHealth(lost, max(starts) if starts else None)
