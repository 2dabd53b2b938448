"""Liveness and readiness of one process, answered from state its own loop keeps: a probe does no I/O.

A task of the process (:meth:`Probes.run`) beats every ``interval_seconds`` and pings PostgreSQL on each beat.
*Live* means that task beat within ``live_within_seconds``: the event loop still turns and the process's
loops get their turn; a blocked loop or a wedged process stops the beats, and an orchestrator restarts it.
*Ready* means the last ping succeeded and the process is not stopping: it reaches PostgreSQL, where its work
lives. A PostgreSQL outage makes a process unready, never dead: restarting it would not bring the database back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from conveyor.pipeline.lifecycle.periodic import every

log = logging.getLogger(__name__)

Ping = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    detail: str


class Probes:
    """What ``/health/live`` and ``/health/ready`` answer; safe to read from the metrics server's threads."""

    def __init__(
        self,
        *,
        interval_seconds: float = 2.0,
        live_within_seconds: float = 30.0,
        ping_timeout_seconds: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval_seconds, self.live_within_seconds = interval_seconds, live_within_seconds
        self.ping_timeout_seconds, self._clock = ping_timeout_seconds, clock
        self._beat = clock()  # starting counts as a beat: a process is live while it connects
        self._ready = ProbeResult(False, "starting")
        self._stopping = False

    def liveness(self) -> ProbeResult:
        silent = self._clock() - self._beat
        if silent > self.live_within_seconds:
            return ProbeResult(False, f"the process's loop has not run for {silent:.0f}s")
        return ProbeResult(True, "live")

    def readiness(self) -> ProbeResult:
        return ProbeResult(False, "stopping") if self._stopping else self._ready

    def stopping(self) -> None:
        """A graceful shutdown began: take no new traffic (still live while it drains)."""
        self._stopping = True

    async def run_once(self, ping: Ping) -> None:
        """Beat, and record whether PostgreSQL answered ``ping`` in time."""
        self._beat = self._clock()
        if self._stopping:
            return
        try:
            await asyncio.wait_for(ping(), self.ping_timeout_seconds)
        except Exception as exc:  # noqa: BLE001 - any failure to reach PostgreSQL makes the process unready
            self._ready = ProbeResult(False, f"PostgreSQL unreachable: {type(exc).__name__}: {exc}"[:300])
        else:
            self._ready = ProbeResult(True, "ready")

    async def run(self, ping: Ping, stop: asyncio.Event) -> None:
        """Beat and ping until ``stop`` is set; then report stopping."""
        try:
            await every(self.interval_seconds, lambda: self.run_once(ping), stop, name="probes")
        finally:
            self.stopping()
