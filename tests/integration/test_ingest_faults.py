"""The ingestor under faults: SIGKILL mid-backlog, a group member dying, PostgreSQL going away."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable

import httpx
import pytest
from aiokafka import AIOKafkaProducer, TopicPartition

from conveyor.db.settings import PostgresSettings
from conveyor.settings import Settings
from tests.conftest import stack_async
from tests.events import minio_message
from tests.integration.api_server import free_port
from tests.integration.conftest import (
    Topics,
    committed_offsets,
    environment,
    metric_value,
    publish,
    scoped_settings,
    scrape,
    wait_until,
)
from tests.integration.test_ingest import counts, running_ingestor


def backlog(run: str, count: int) -> list[tuple[bytes | None, bytes]]:
    """``count`` distinct uploads (each starts the 2-job fingerprint pipeline), keyed like MinIO keys them."""
    names = [f"{run}/file {i:05d}.bin" for i in range(count)]
    return [(f"uploads/{name}".encode(), minio_message("uploads", name)) for name in names]


def start_ingest(settings: Settings, *, metrics_port: int | None = None) -> subprocess.Popen[bytes]:
    """`conveyor ingest` as a user starts it, on the test's database, topics and group."""
    env = environment(settings)
    if metrics_port is not None:
        env.update(CONVEYOR_METRICS__ENABLED="true", CONVEYOR_METRICS__PORT=str(metrics_port))
    return subprocess.Popen(
        [sys.executable, "-m", "conveyor", "ingest"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


async def _both(ports: list[int], figure: Callable[[int], float]) -> bool:
    try:
        return all(n > 0 for n in await asyncio.gather(*(asyncio.to_thread(figure, port) for port in ports)))
    except httpx.HTTPError:
        return False  # a member is still starting


def _consumed(port: int) -> float:
    return metric_value(port, "conveyor_ingest_messages_consumed_total")


def _assigned(port: int) -> float:
    """How many partitions the member reports lag for: the ones assigned to it."""
    return float(sum(line.startswith("conveyor_ingest_consumer_lag_messages{") for line in scrape(port)))


async def recorded(database: PostgresSettings) -> int:
    return len(await counts(database))


async def assert_exactly_once(database: PostgresSettings, events: int, jobs_each: int) -> None:
    recorded_counts = await counts(database)
    assert len(recorded_counts) == events
    assert Counter(c.jobs for c in recorded_counts) == {jobs_each: events}


def stop(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


async def test_sigkill_in_the_middle_of_a_backlog_loses_and_duplicates_nothing(
    settings: Settings, database: PostgresSettings, topics: Topics
) -> None:
    scoped = scoped_settings(settings, database, topics, batch_max_records=200)
    await publish(scoped, topics.events, backlog("kill", 5_000))

    first = start_ingest(scoped)
    try:
        await wait_until(lambda: _more_than(database, 500), within=60, what="the first ingestor to get going")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert await recorded(database) < 5_000, "the kill should land mid-backlog"

    second = start_ingest(scoped)
    try:
        await wait_until(lambda: _at_least(database, 5_000), within=120, what="the backlog after the restart")
    finally:
        stop(second)
    await assert_exactly_once(database, 5_000, jobs_each=2)


class Crash(Exception):
    """The process dies here."""


async def test_a_crash_between_the_database_commit_and_the_offset_commit_is_redelivered_and_deduplicated(
    settings: Settings, database: PostgresSettings, topics: Topics
) -> None:
    """The worst moment to die, pinned: batch 3's events and jobs are committed, its offsets never are."""
    scoped = scoped_settings(settings, database, topics, batch_max_records=100)
    await publish(scoped, topics.events, backlog("window", 1_000))
    async with running_ingestor(scoped) as first:
        batches, commit = 0, first._commit

        async def die_before_the_third_commit(offsets: dict[TopicPartition, int]) -> None:
            nonlocal batches
            batches += 1
            if batches == 3:
                raise Crash
            await commit(offsets)

        first._commit = die_before_the_third_commit  # type: ignore[method-assign]
        with pytest.raises(Crash):
            for _ in range(50):
                await first.run_once(timeout_ms=1000)
        in_the_window = await recorded(database) - sum((await committed_offsets(scoped)).values())
    assert in_the_window > 0, "batch 3 was committed to PostgreSQL and not to Kafka"

    async with running_ingestor(scoped) as second:
        while await recorded(database) < 1_000:
            await second.run_once(timeout_ms=1000)
        redelivered = second.metrics.duplicates._value.get()
    assert redelivered == in_the_window, "exactly the uncommitted batch came back, and was recognised"
    await assert_exactly_once(database, 1_000, jobs_each=2)


async def test_two_ingestors_share_the_partitions_and_one_takes_over_when_the_other_dies(
    settings: Settings, database: PostgresSettings, topics: Topics
) -> None:
    # Both members join (and split the partitions) before any work arrives, and die while consuming a backlog.
    # A second backlog, published after the kill, lands on every partition: the dead member's ones too, which
    # only a takeover can finish. (Asserting the kill left the first backlog unfinished raced the members:
    # with write lanes and PostgreSQL's fsync off they recorded 16,584 of 20,000 by then.)
    scoped = scoped_settings(settings, database, topics, batch_max_records=10)
    ports = [free_port(), free_port()]
    members = [start_ingest(scoped, metrics_port=port) for port in ports]
    try:
        await wait_until(lambda: _both(ports, _assigned), within=60, what="both members to own partitions")
        await publish(scoped, topics.events, backlog("pair", 10_000))
        await wait_until(lambda: _both(ports, _consumed), within=60, what="both members to consume")
        members[0].send_signal(signal.SIGKILL)
        members[0].wait()
        await publish(scoped, topics.events, backlog("after", 10_000))
        await wait_until(lambda: _at_least(database, 20_000), within=180, what="the survivor to finish the topic")
    finally:
        for member in members:
            stop(member)
    await assert_exactly_once(database, 20_000, jobs_each=2)


async def test_postgres_down_for_ten_seconds_holds_offsets_and_loses_nothing(
    settings: Settings, database: PostgresSettings, topics: Topics
) -> None:
    scoped = scoped_settings(settings, database, topics)
    messages = backlog("pgdown", 600)
    done = asyncio.Event()
    async with running_ingestor(scoped) as ingestor:
        consuming = asyncio.create_task(ingestor.run(done))
        producing = asyncio.create_task(trickle(scoped, topics.events, messages, seconds=15))
        await asyncio.sleep(2)
        await stack_async("down", "postgres")
        try:
            # Batches written before PostgreSQL went may still commit, within one commit interval.
            await asyncio.sleep(scoped.ingest.commit_interval_seconds + 0.5)
            held = await committed_offsets(scoped)
            await asyncio.sleep(10)
            assert await committed_offsets(scoped) == held, "offsets moved while PostgreSQL was down"
        finally:
            await stack_async("up", "postgres")
        await producing
        try:
            await wait_until(lambda: _at_least(database, 600), within=90, what="every event after PostgreSQL returned")
        except AssertionError as exc:
            died = consuming.done() and not consuming.cancelled() and consuming.exception()
            raise AssertionError(f"{exc}; the consumer {'died: ' + repr(died) if died else 'still runs'}") from None
        done.set()
        await consuming
    await assert_exactly_once(database, 600, jobs_each=2)
    assert ingestor.metrics.database_retries._value.get() > 0


async def trickle(settings: Settings, topic: str, messages: list[tuple[bytes | None, bytes]], seconds: float) -> None:
    """Publish ``messages`` evenly over ``seconds``, as uploads arrive."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap_servers)
    await producer.start()
    try:
        pause = seconds / len(messages)
        for key, value in messages:
            await producer.send_and_wait(topic, value, key=key)
            await asyncio.sleep(pause)
    finally:
        await producer.stop()


async def _more_than(database: PostgresSettings, count: int) -> bool:
    try:
        return await recorded(database) > count
    except Exception:  # noqa: BLE001 - the database may be mid-restart
        return False


async def _at_least(database: PostgresSettings, count: int) -> bool:
    try:
        return await recorded(database) >= count
    except Exception:  # noqa: BLE001 - the database may be mid-restart
        return False
