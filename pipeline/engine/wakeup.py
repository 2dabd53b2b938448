"""Wake-ups: a Redis pub/sub nudge, sent after a commit that made jobs runnable.

Only a speed-up. Workers also poll on a jittered interval, so a lost message, a dead Redis or a network
partition makes conveyor slower, never stuck. Publishing is debounced: the first nudge goes out at once,
and nudges within the next ``debounce_seconds`` are folded into one trailing message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from conveyor.pipeline.engine.settings import RedisSettings
from conveyor.pipeline.lifecycle.waiting import wait_for_event

log = logging.getLogger(__name__)

DEBOUNCE_SECONDS = 0.005
#: Sent when the job types are unknown or many: every listener wakes.
ANY_TYPE = "*"


def channel(settings: RedisSettings) -> str:
    return f"{settings.key_prefix}:wakeup"


class WakeupPublisher:
    """Publishes job types that became runnable; never raises, never blocks its caller."""

    def __init__(self, client: aioredis.Redis, settings: RedisSettings, debounce_seconds: float = DEBOUNCE_SECONDS):
        self._client, self._channel, self._debounce = client, channel(settings), debounce_seconds
        self._pending: set[str] = set()
        self._flusher: asyncio.Task[None] | None = None
        self._quiet_until = 0.0
        self.sent = 0
        self.failed = 0

    def notify(self, job_types: Iterable[str]) -> None:
        """Schedule a wake-up for ``job_types`` (call it after the transaction committed)."""
        self._pending.update(job_types or [ANY_TYPE])
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        wait = self._quiet_until - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        types, self._pending = self._pending, set()
        self._quiet_until = loop.time() + self._debounce
        message = ANY_TYPE if ANY_TYPE in types else ",".join(sorted(types))
        if await self._publish(message):
            self.sent += 1
        else:
            self.failed += 1
        if self._pending:
            self._flusher = loop.create_task(self._flush())

    async def _publish(self, message: str) -> bool:
        # Two tries: after a Redis restart the first meets the pool's dead connection, the second a new one.
        for attempt in (1, 2):
            try:
                await self._client.publish(self._channel, message)
            except (TimeoutError, RedisError, OSError) as exc:
                log.debug("wake-up not published (try %d; workers poll meanwhile): %s", attempt, exc)
            else:
                return True
        return False

    async def close(self) -> None:
        """Send what is pending, then stop."""
        if self._flusher is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher


class WakeupListener:
    """Sets :attr:`event` when a wake-up for one of ``job_types`` (or for any type) arrives."""

    def __init__(self, client: aioredis.Redis, settings: RedisSettings, job_types: Iterable[str] = ()):
        self._client, self._channel = client, channel(settings)
        self._types = set(job_types)
        self.event = asyncio.Event()
        self.connected = asyncio.Event()

    def wants(self, message: str) -> bool:
        announced = set(message.split(","))
        return not self._types or ANY_TYPE in announced or bool(announced & self._types)

    async def run(self, stop: asyncio.Event, reconnect_seconds: float = 1.0) -> None:
        """Listen until ``stop`` is set, reconnecting whenever Redis goes away."""
        while not stop.is_set():
            try:
                await self._listen(stop)
            except (TimeoutError, RedisError, OSError) as exc:
                self.connected.clear()
                log.debug("wake-up listener lost Redis (polling meanwhile): %s", exc)
                await wait_for_event(stop, reconnect_seconds)

    async def _listen(self, stop: asyncio.Event) -> None:
        async with self._client.pubsub() as pubsub:
            await pubsub.subscribe(self._channel)
            self.connected.set()
            # A wake-up may have been sent while we were not listening: wake once to poll.
            self.event.set()
            while not stop.is_set():
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is not None and self.wants(_text(message["data"])):
                    self.event.set()


def _text(data: bytes | str) -> str:
    return data.decode() if isinstance(data, bytes) else data


def redis_client(settings: RedisSettings) -> aioredis.Redis:
    """A client whose every call gives up after ``settings.timeout_seconds``."""
    return aioredis.Redis.from_url(
        settings.url,
        socket_timeout=settings.timeout_seconds,
        socket_connect_timeout=settings.timeout_seconds,
        health_check_interval=10,
    )
