"""Wake-ups over real Redis: delivered when Redis is up, harmless when it is not."""

from __future__ import annotations

import asyncio

from conveyor.pipeline.engine.settings import RedisSettings
from conveyor.pipeline.engine.wakeup import WakeupListener, WakeupPublisher, redis_client
from conveyor.settings import Settings


async def test_listener_wakes_for_its_types_only(settings: Settings) -> None:
    redis_settings = settings.redis.model_copy(update={"key_prefix": "test-wakeup"})
    client = redis_client(redis_settings)
    stop = asyncio.Event()
    listener = WakeupListener(client, redis_settings, job_types=["checksum"])
    task = asyncio.create_task(listener.run(stop))
    try:
        await asyncio.wait_for(listener.connected.wait(), 5)
        listener.event.clear()
        publisher = WakeupPublisher(client, redis_settings)

        publisher.notify(["inspect"])
        await publisher.close()
        await asyncio.sleep(0.2)
        assert not listener.event.is_set(), "a wake-up for another type must not wake this worker"

        publisher.notify(["checksum", "inspect"])
        await asyncio.wait_for(listener.event.wait(), 2)
    finally:
        stop.set()
        await task
        await client.aclose()


async def test_debounce_folds_a_burst_into_at_most_two_messages(settings: Settings) -> None:
    client = redis_client(settings.redis)
    publisher = WakeupPublisher(client, settings.redis, debounce_seconds=0.05)
    try:
        for _ in range(100):
            publisher.notify(["t"])
        await publisher.close()
        await asyncio.sleep(0.1)
        await publisher.close()
        assert publisher.sent <= 2 and publisher.failed == 0
    finally:
        await client.aclose()


async def test_publishing_to_a_dead_redis_never_raises_or_blocks() -> None:
    dead = RedisSettings(url="redis://127.0.0.1:1/0", timeout_seconds=0.2)
    client = redis_client(dead)
    publisher = WakeupPublisher(client, dead)
    try:
        publisher.notify(["t"])
        await asyncio.wait_for(publisher.close(), 2)
        assert publisher.failed == 1 and publisher.sent == 0
    finally:
        await client.aclose()
