"""Supervised background tasks: none dies silently.

A side task of a process (a completion writer, a heartbeat, a rescuer, a wake-up listener...) that raises
is logged with its traceback, counted in ``conveyor_background_task_failures_total{task}``, and started
again after a backoff that doubles up to a cap. A task that keeps failing never takes its process down
quietly and never leaves it half alive: it keeps being retried, loudly, where an operator sees it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from prometheus_client import CollectorRegistry, Counter

log = logging.getLogger(__name__)

TaskFactory = Callable[[], Awaitable[None]]


def task_failures_counter(registry: CollectorRegistry) -> Counter:
    """The failure counter every process exposes, on ``registry``."""
    return Counter(
        "conveyor_background_task_failures_total",
        "Background tasks that raised and were restarted after a backoff.",
        ["task"],
        registry=registry,
    )


class Supervisor:
    """Starts named background tasks and restarts each one that raises; ``close()`` cancels them all."""

    def __init__(
        self,
        failures: Counter | None = None,
        *,
        first_backoff_seconds: float = 0.1,
        max_backoff_seconds: float = 30.0,
        healthy_after_seconds: float = 60.0,
    ) -> None:
        self._failures = failures
        self._first, self._max, self._healthy_after = first_backoff_seconds, max_backoff_seconds, healthy_after_seconds
        self._tasks: dict[str, asyncio.Task[None]] = {}
        #: Failures seen per task since start (for tests and final counters).
        self.failure_counts: dict[str, int] = {}

    def start(self, name: str, factory: TaskFactory) -> asyncio.Task[None]:
        """Run ``factory()`` as task ``name`` until it returns, restarting it whenever it raises."""
        if name in self._tasks:
            raise ValueError(f"a task named {name!r} is already supervised")
        if self._failures is not None:
            self._failures.labels(name)
        self.failure_counts[name] = 0
        task = asyncio.create_task(self._keep_running(name, factory), name=f"supervised-{name}")
        self._tasks[name] = task
        return task

    async def _keep_running(self, name: str, factory: TaskFactory) -> None:
        backoff = self._first
        while True:
            started = time.monotonic()
            try:
                await factory()
            except Exception:  # noqa: BLE001 - whatever it was, it is logged with its traceback and counted
                self._record_failure(name, backoff)
            else:
                return
            if time.monotonic() - started >= self._healthy_after:
                backoff = self._first  # it ran well for a while: this failure is a new story
            await asyncio.sleep(backoff)
            backoff = min(self._max, backoff * 2)

    def _record_failure(self, name: str, backoff: float) -> None:
        self.failure_counts[name] += 1
        if self._failures is not None:
            self._failures.labels(name).inc()
        log.exception("background task %r failed; restarting it in %.1fs", name, backoff)

    async def close(self) -> None:
        """Cancel every task and wait for them to end."""
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        self._tasks.clear()
