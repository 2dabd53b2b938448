"""``conveyor run``: bring everything up, upload a sample file and show what conveyor received."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import time
from importlib import resources
from typing import Any
from urllib.parse import unquote_plus

from aiokafka import AIOKafkaConsumer

from conveyor import bootstrap
from conveyor.commands.admin import apply_migrations
from conveyor.settings import Settings
from conveyor.stack.manager import Stack, format_table
from pipeline.storage import s3_client

SAMPLE = "orders.csv"


def register(commands: Any) -> None:
    run = commands.add_parser("run", help="set everything up, upload a sample file and follow it through conveyor")
    run.add_argument("--no-stack", action="store_true", help="use already running services")
    run.set_defaults(handler=_run)


def _run(settings: Settings, args: argparse.Namespace) -> int:
    return asyncio.run(_run_async(settings, use_stack=not args.no_stack))


async def _run_async(settings: Settings, *, use_stack: bool) -> int:
    if use_stack:
        stack = Stack(settings)
        await stack.up()
        print(format_table(await stack.status()))
    await apply_migrations(settings)
    await bootstrap.bootstrap(settings.kafka, settings.s3, notifications=settings.stack.s3_server == "minio")
    key = f"samples/{time.strftime('%Y%m%dT%H%M%S')} {SAMPLE}"
    event = await _upload_and_receive(settings, key)
    print(f"\nuploaded s3://{settings.s3.buckets[0]}/{key}; the event conveyor received from Kafka:")
    print(json.dumps(event, indent=2))
    return 0


async def _upload_and_receive(settings: Settings, key: str) -> Any:
    consumer = AIOKafkaConsumer(
        settings.kafka.events_topic, bootstrap_servers=settings.kafka.bootstrap_servers,
        auto_offset_reset="latest", enable_auto_commit=False,
    )  # fmt: skip
    await consumer.start()
    try:
        await _wait_for_assignment(consumer)
        data = resources.files("conveyor.samples").joinpath(SAMPLE).read_bytes()
        client = s3_client(settings.s3)
        await asyncio.to_thread(client.put_object, settings.s3.buckets[0], key, io.BytesIO(data), len(data))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for messages in (await consumer.getmany(timeout_ms=500)).values():
                for message in messages:
                    value = json.loads(message.value)
                    if _object_key(value) == key:
                        return value
    finally:
        await consumer.stop()
    raise TimeoutError(f"no event for {key!r} within 30 s: is the bucket notification rule in place?")


async def _wait_for_assignment(consumer: AIOKafkaConsumer) -> None:
    # With auto_offset_reset=latest, records published before partitions are assigned would be skipped.
    while not consumer.assignment():
        await consumer.getmany(timeout_ms=100)
    for partition in consumer.assignment():
        await consumer.position(partition)


def _object_key(value: Any) -> str | None:
    record = value["Records"][0]["s3"]["object"]
    return unquote_plus(record["key"]) if "EventName" in value else record["key"]
