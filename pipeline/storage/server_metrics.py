"""What the S3 server itself reports about its notifications (MinIO's Prometheus endpoint).

MinIO counts each event it failed to send or queue (``minio_notify_target_failed_events``) and each it
dropped from a full in-memory queue (``minio_notify_events_skipped_total``): the events conveyor never
got. Other servers have no such endpoint; reading it is then switched off by its setting.
"""

from __future__ import annotations

import urllib3
from prometheus_client.parser import text_string_to_metric_families

from conveyor.pipeline.engine.errors import StorageError
from conveyor.pipeline.storage.settings import S3Settings

#: The counters of notifications the server did not deliver (as family names: the parser reads MinIO's
#: ``minio_notify_target_failed_events`` counter as the sample ``..._total``).
LOST_NOTIFICATION_FAMILIES = frozenset({"minio_notify_target_failed_events", "minio_notify_events_skipped"})


def lost_notifications(settings: S3Settings, path: str, *, timeout_seconds: float = 2.0) -> float:
    """The server's count of notifications it failed to send or dropped, since it started.

    Raises :class:`StorageError` when the endpoint cannot be read (not MinIO, or not public).
    """
    http = urllib3.PoolManager(timeout=urllib3.Timeout(total=timeout_seconds), retries=False)
    try:
        response = http.request("GET", settings.endpoint + path)
    except urllib3.exceptions.HTTPError as exc:
        raise StorageError(f"reading the S3 server's metrics at {path}: {exc}") from exc
    if response.status != 200:
        raise StorageError(f"reading the S3 server's metrics at {path}: HTTP {response.status}")
    return sum(
        sample.value
        for family in text_string_to_metric_families(response.data.decode("utf-8", errors="replace"))
        if family.name in LOST_NOTIFICATION_FAMILIES
        for sample in family.samples
    )
