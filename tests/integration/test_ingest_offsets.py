"""Offset commits against real Kafka and PostgreSQL: held back, gathered, never ahead of the database, and
handed over whole when partitions move."""

from __future__ import annotations

import asyncio
import functools

from aiokafka import TopicPartition

from conveyor.db.settings import PostgresSettings
from conveyor.ingest.consumer import BatchReport, Fetched
from conveyor.settings import Settings
from tests.integration.conftest import Topics, committed_offsets, publish, scoped_settings, wait_until
from tests.integration.test_ingest import running_ingestor
from tests.integration.test_ingest_faults import backlog, recorded, trickle


async def test_a_steady_trickle_commits_its_offsets_together_and_never_ahead_of_postgresql(
    settings: Settings, database: PostgresSettings, topics: Topics
) -> None:
    scoped = scoped_settings(settings, database, topics, commit_interval_seconds=1.0)
    batches: list[int] = []
    commits: list[dict[TopicPartition, int]] = []
    async with running_ingestor(scoped) as ingestor:
        finish, commit = ingestor._finish, ingestor._commit

        async def counted(fetched: Fetched) -> BatchReport:
            batches.append(len(fetched.records))
            return await finish(fetched)

        async def behind_postgresql(offsets: dict[TopicPartition, int]) -> None:
            # Every topic's offsets start at 0 and each message is one event: what the group will have
            # committed after this call must already be recorded.
            after = {**(commits[-1] if commits else {}), **offsets}
            assert sum(after.values()) <= await recorded(database), "an offset committed ahead of its events"
            commits.append(after)
            await commit(offsets)

        ingestor._finish = counted  # type: ignore[method-assign]
        ingestor._commit = behind_postgresql  # type: ignore[method-assign]
        stop = asyncio.Event()
        consuming = asyncio.create_task(ingestor.run(stop))
        await trickle(scoped, topics.events, backlog("trickle", 150), seconds=3)
        await wait_until(lambda: _recorded_all(database, 150), within=30, what="every event recorded")
        stop.set()
        await consuming
        while_running = len(commits)
    assert len(batches) >= 30, f"the trickle came in small batches: {batches}"
    # About 3 s of trickle at one commit a second (the first at once), where each batch used to commit.
    assert while_running <= 6, f"{while_running} commits for {len(batches)} batches"
    assert sum((await committed_offsets(scoped)).values()) == 150, "stopping committed the rest"


async def test_revoked_partitions_commit_what_their_member_wrote_before_they_move(
    settings: Settings, database: PostgresSettings, topics: Topics
) -> None:
    # An interval no test outlasts: after the first commit, only the revoke can commit.
    scoped = scoped_settings(settings, database, topics, commit_interval_seconds=3600.0, batch_max_records=10)
    await publish(scoped, topics.events, backlog("moved", 200))
    async with running_ingestor(scoped) as first:
        stop = asyncio.Event()
        consuming = asyncio.create_task(first.run(stop))
        await wait_until(lambda: _recorded_all(database, 200), within=60, what="the first member to record all")
        held_back = sum((await committed_offsets(scoped)).values())
        async with running_ingestor(scoped) as second:
            await wait_until(lambda: _committed(scoped, 200), within=60, what="the revoke to commit the rest")
            for _ in range(5):
                await second.run_once(timeout_ms=200)
            redelivered = second.metrics.duplicates._value.get()
        stop.set()
        await consuming
    assert 0 < held_back <= 10, f"only the first batch was committed before the rebalance ({held_back})"
    assert redelivered == 0, "the new owner started where the old one's written batches ended"


async def _recorded_all(database: PostgresSettings, events: int) -> bool:
    return await recorded(database) == events


async def _committed(settings: Settings, messages: int) -> bool:
    return sum((await committed_offsets(settings)).values()) == messages


async def test_a_steady_flow_lingers_into_fewer_batches_and_a_sparse_one_never_waits(
    settings: Settings, database: PostgresSettings, topics: Topics
) -> None:
    # A linger far above the flow's gaps (10 ms), below the sparse events' (3 s), and above the time a
    # sparse event may take to be recorded (1.5 s): a sparse event that lingered would miss it.
    scoped = scoped_settings(settings, database, topics, batch_linger_ms=2000)
    messages = backlog("linger", 63)
    batches: list[int] = []
    async with running_ingestor(scoped) as ingestor:
        finish = ingestor._finish

        async def counted(fetched: Fetched) -> BatchReport:
            batches.append(len(fetched.records))
            return await finish(fetched)

        ingestor._finish = counted  # type: ignore[method-assign]
        stop = asyncio.Event()
        consuming = asyncio.create_task(ingestor.run(stop))
        await trickle(scoped, topics.events, messages[:60], seconds=0.6)
        await wait_until(lambda: _recorded_all(database, 60), within=30, what="the flow recorded")
        steady = list(batches)
        for n, message in enumerate(messages[60:], start=61):
            await asyncio.sleep(3)
            await publish(scoped, topics.events, [message])
            await wait_until(functools.partial(_recorded_all, database, n), within=1.5, what=f"sparse event {n}")
        stop.set()
        await consuming
    # 60 events over about 0.6 s: the batch after the first lingers and takes the rest.
    assert len(steady) <= 4, f"batches of the steady flow: {steady}"
    assert batches[len(steady) :] == [1, 1, 1], "each sparse event was a batch of its own"
