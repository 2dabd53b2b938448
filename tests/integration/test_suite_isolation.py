"""`make run` after `make test` sees none of the tests' jobs: the suite's events are for its own buckets.

Runs after every other test (``after_everything``), when the shared events topic holds all of this
session's events. The session's own teardown then removes its buckets, groups and template database, and
fails the run if any is left.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest
from prometheus_client import CollectorRegistry

from conveyor.db.records import JobFilter
from conveyor.ingest.consumer import Ingestor
from conveyor.ingest.metrics import IngestMetrics
from conveyor.ingest.routing import load_rules
from conveyor.ingest.settings import IngestSettings
from conveyor.pipeline.engine import Engine
from conveyor.pipeline.storage.settings import S3Settings
from conveyor.settings import Settings
from tests import isolation

pytestmark = [pytest.mark.after_everything, pytest.mark.timeout(300)]


async def test_an_ingestor_configured_like_make_run_ingests_none_of_the_suites_events(
    engine: Engine, settings: Settings
) -> None:
    user_buckets = S3Settings().buckets  # `make run` with no CONVEYOR_S3__BUCKETS: the user's `uploads`
    assert isolation.SUITE_BUCKET in settings.s3.buckets and isolation.SUITE_BUCKET not in user_buckets
    metrics = IngestMetrics(CollectorRegistry())
    # A new group reads the shared topic from its very beginning, as a first `make run` does.
    ingestor = Ingestor(engine, load_rules(None), IngestSettings(group_id=isolation.group("as-make-run")),
                        settings.kafka, metrics, buckets=user_buckets)  # fmt: skip
    await ingestor.start()
    try:
        deadline, caught_up = time.monotonic() + 240, False
        while not caught_up and time.monotonic() < deadline:
            await ingestor.run_once(timeout_ms=500)
            assignment = ingestor.consumer.assignment()
            ends = await ingestor.consumer.end_offsets(list(assignment)) if assignment else {}
            caught_up = bool(ends) and all([await ingestor.consumer.position(tp) >= end for tp, end in ends.items()])
    finally:
        await ingestor.stop()
    assert caught_up, "the ingestor never reached the end of the shared topic"

    jobs = await engine.list_jobs(JobFilter(), limit=1_000_000)
    assert Counter(j.source_bucket for j in jobs).keys() <= set(user_buckets), "a test bucket's job was created"
    assert metrics.foreign_skipped._value.get() > 0, "the suite's own uploads reached the topic and were skipped"
