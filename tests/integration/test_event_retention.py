"""Retention never forgets an event while Kafka may still redeliver it."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from conveyor.db.errors import ConfigurationError
from conveyor.db.records import JobFilter
from conveyor.db.settings import PostgresSettings
from conveyor.ingest.retention import check_event_retention, topic_retention_seconds
from conveyor.pipeline.engine import Engine
from conveyor.pipeline.engine.settings import RetentionSettings
from conveyor.pipeline.maintenance.retention import Pruner
from conveyor.settings import Settings
from tests import isolation
from tests.events import minio_message
from tests.integration.conftest import Topics, publish, scoped_settings
from tests.integration.test_ingest import counts, drain, running_ingestor


async def test_event_retention_shorter_than_the_topics_is_refused(settings: Settings, topics: Topics) -> None:
    kafka = settings.kafka.model_copy(update={"events_topic": topics.events})
    kept = await topic_retention_seconds(kafka)
    assert kept == 24 * 3600, "the local stack's broker keeps messages a day"
    check_event_retention(None, kept, topics.events)  # events kept forever: always safe
    check_event_retention(kept * 2, kept, topics.events)
    with pytest.raises(ConfigurationError, match="EVENTS_AFTER_SECONDS=3600 would forget recorded events"):
        check_event_retention(3600, kept, topics.events)
    with pytest.raises(ConfigurationError, match="forever"):
        check_event_retention(kept * 2, None, topics.events)


async def _complete_everything(engine: Engine) -> int:
    done = 0
    while jobs := await engine.claim(uuid.uuid4(), limit=100):
        done += len(await engine.complete_many([(job, {}) for job in jobs]))
    return done


async def test_an_old_offset_redelivered_after_its_jobs_were_pruned_creates_nothing(
    settings: Settings, database: PostgresSettings, topics: Topics, engine: Engine
) -> None:
    scoped = scoped_settings(settings, database, topics)
    await publish(scoped, topics.events, [(b"uploads/old.csv", minio_message("uploads", "old.csv"))])
    async with running_ingestor(scoped) as first:
        await drain(first, database, events=1)
    assert await _complete_everything(engine) == 3

    await asyncio.sleep(0.05)  # retention below is measured against finished_at
    safe = RetentionSettings(completed_after_seconds=0.01, events_after_seconds=2 * 24 * 3600)
    report = await Pruner(engine, safe).run_once()
    assert report.jobs == 3 and report.events == 0, "the jobs go; the young event, still in the topic, stays"

    # A new member of a new group reads the topic from its start: the old offset comes back.
    again = scoped.model_copy(update={"ingest": scoped.ingest.model_copy(update={"group_id": isolation.group("redo")})})
    async with running_ingestor(again) as second:
        for _ in range(20):
            report_again = await second.run_once(timeout_ms=500)
            if report_again.messages:
                break
        assert report_again.stored.duplicates == 1 and report_again.stored.new_events == 0
    assert await engine.list_jobs(JobFilter(), limit=100) == [], "nothing was created again"
    assert [c.key for c in await counts(database)] == ["old.csv"]
