"""When the S3 server's own metrics say notifications were lost: more failed sends, or a restart."""

from __future__ import annotations

from conveyor.ingest.reconciler import gap_suspected
from conveyor.pipeline.storage.server_metrics import NotificationHealth


def test_more_failed_sends_or_a_restart_suspect_a_gap_and_nothing_else_does() -> None:
    before = NotificationHealth(lost=3, started_at=1000.0)
    assert gap_suspected(None, before) is None, "the first read is only a baseline"
    assert gap_suspected(before, NotificationHealth(3, 1000.0)) is None
    assert "2 more notifications" in (gap_suspected(before, NotificationHealth(5, 1000.0)) or "")
    restarted = gap_suspected(before, NotificationHealth(0, 2000.0))
    assert restarted is not None and "restarted" in restarted, "its counters reset, its memory is gone"
    assert gap_suspected(NotificationHealth(3, None), NotificationHealth(3, None)) is None, "no start time exported"
