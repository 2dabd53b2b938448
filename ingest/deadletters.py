"""Dead letters: messages that cannot become jobs, kept in a Kafka topic and in PostgreSQL with the reason.

The topic copy carries the original key, bytes and headers, with headers saying why before them (reason,
error, source topic, partition, offset); the table copy (its headers kept beside it) lets ``conveyor dlq
list`` and the console show them, and ``conveyor dlq replay ID`` send one back through routing after a fix.
A bad message never blocks the good ones behind it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace

from aiokafka import AIOKafkaProducer

from conveyor.db.records import DeadLetterRow, EventOrigin, NewDeadLetter
from conveyor.ingest.errors import BadEvent
from conveyor.ingest.events import KeyEncoding, parse_message
from conveyor.ingest.routing import RoutedEvent, RoutingRules, load_rules, route
from conveyor.ingest.settings import IngestSettings
from conveyor.ingest.store import Positioned, store_events
from conveyor.pipeline.engine import Engine

log = logging.getLogger(__name__)


def headers(letter: NewDeadLetter) -> list[tuple[str, bytes]]:
    """Why the letter is there, then the headers it arrived with."""
    return [
        ("conveyor-reason", letter.reason.encode()),
        ("conveyor-error", letter.error.encode()[:4096]),
        ("conveyor-source-topic", letter.topic.encode()),
        ("conveyor-source-partition", str(letter.partition).encode()),
        ("conveyor-source-offset", str(letter.offset).encode()),
        *letter.headers,
    ]


async def publish(producer: AIOKafkaProducer, topic: str, letters: Sequence[NewDeadLetter]) -> None:
    """Send each letter to the dead-letter topic and wait until Kafka has them all."""
    sends = [await producer.send(topic, letter.value, key=letter.key, headers=headers(letter)) for letter in letters]
    for sent in sends:
        await sent


def _route(
    value: bytes, rules: RoutingRules, max_bytes: int, max_lineage_depth: int, plain_key_encoding: KeyEncoding
) -> list[RoutedEvent]:
    events = parse_message(value, max_bytes=max_bytes, plain_key_encoding=plain_key_encoding)
    routed = [route(e, rules, max_lineage_depth=max_lineage_depth) for e in events]
    if unrouted := [r.event for r in routed if not r.pipelines]:
        raise BadEvent("unrouted", f"no pipeline matches s3://{unrouted[0].bucket}/{unrouted[0].key}")
    return routed


@dataclass(frozen=True)
class ReplayOutcome:
    letter: DeadLetterRow
    jobs_created: int


@dataclass(frozen=True)
class Replayer:
    """Sends dead letters back through parsing and routing, with the rules and limits ingest uses."""

    engine: Engine
    rules: RoutingRules
    max_bytes: int
    max_lineage_depth: int
    plain_key_encoding: KeyEncoding = "auto"

    @classmethod
    def configured(cls, engine: Engine, settings: IngestSettings) -> Replayer:
        """A replayer with the rules and limits of ``settings``: the ones ingest itself applies."""
        return cls(engine, load_rules(settings.pipelines_file), settings.max_message_bytes,
                   settings.max_lineage_depth, settings.plain_key_encoding)  # fmt: skip

    async def replay(self, letter_id: int) -> ReplayOutcome | None:
        """Replay dead letter ``letter_id``; None if there is no such letter.

        When it now routes, its event and jobs are created and the letter is marked replayed, all in one
        transaction (two replays of one letter serialise on its row lock; the second finds the event
        recorded and creates nothing); when it still fails, the letter stays open with the new error.
        """
        async with self.engine.transaction() as tx:
            letter = await tx.lock_dead_letter(letter_id)
            if letter is None:
                return None
            try:
                routed = _route(letter.message_value, self.rules, self.max_bytes, self.max_lineage_depth,
                                self.plain_key_encoding)  # fmt: skip
            except BadEvent as exc:
                return ReplayOutcome(await tx.mark_replayed(letter_id, error=f"{exc.reason}: {exc}"), 0)
            replayed = [replace(r, event=replace(r.event, origin=EventOrigin.REPLAY)) for r in routed]
            positioned = [Positioned(r, letter.source_partition, letter.source_offset) for r in replayed]
            stored = await store_events(tx, positioned, topic=letter.source_topic)
            letter = await tx.mark_replayed(letter_id, error=None)
        log.info("replayed dead letter %d: %d jobs created", letter_id, stored.jobs_created)
        return ReplayOutcome(letter, stored.jobs_created)
