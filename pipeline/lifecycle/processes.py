"""Supervised child processes: each one that dies is started again after a backoff, and said so.

Used by ``conveyor run`` (ingest, workers, the API) and by the worker autoscaler (its worker processes).
:meth:`ProcessSupervisor.check_once` reaps children that exited, logs each exit with its code, counts it,
and starts the child again once its backoff (doubling from ``first_backoff_seconds`` up to the cap, reset
after it ran ``healthy_after_seconds``) has passed. Retiring a child stops it gracefully, for good.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

Spawn = Callable[[], "subprocess.Popen[bytes]"]


@dataclass
class Child:
    """One supervised process and its restart bookkeeping."""

    name: str
    spawn: Spawn
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    backoff: float = 0.0
    started_at: float = 0.0
    restart_at: float | None = None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


class ProcessSupervisor:
    """Keeps named children running until they are retired or :meth:`stop_all` is called."""

    def __init__(
        self,
        *,
        first_backoff_seconds: float = 1.0,
        max_backoff_seconds: float = 30.0,
        healthy_after_seconds: float = 60.0,
        on_exit: Callable[[Child], None] = lambda child: None,
    ) -> None:
        self._first, self._max, self._healthy_after = first_backoff_seconds, max_backoff_seconds, healthy_after_seconds
        self._on_exit = on_exit
        self.children: list[Child] = []
        #: Retired children still shutting down: reaped by check_once, waited for by stop_all.
        self._retired: list[Child] = []

    def __len__(self) -> int:
        return len(self.children)

    @property
    def processes(self) -> list[subprocess.Popen[bytes]]:
        return [c.process for c in self.children if c.process is not None]

    def add(self, name: str, spawn: Spawn) -> Child:
        """Start ``spawn()`` as child ``name`` and keep it running."""
        child = Child(name, spawn, backoff=self._first)
        self._start(child)
        self.children.append(child)
        return child

    def _start(self, child: Child) -> None:
        child.process, child.started_at, child.restart_at = child.spawn(), time.monotonic(), None
        log.info("started %s (pid %d)", child.name, child.process.pid)

    def check_once(self) -> list[str]:
        """Reap children that exited and restart those whose backoff has passed; the names restarted."""
        now, restarted = time.monotonic(), []
        self._retired = [c for c in self._retired if c.alive()]  # poll() reaps: no zombies
        for child in self.children:
            if child.restart_at is None and not child.alive():
                self._exited(child, now)
            if child.restart_at is not None and now >= child.restart_at:
                child.restarts += 1
                self._start(child)
                restarted.append(child.name)
        return restarted

    def _exited(self, child: Child, now: float) -> None:
        code = child.process.returncode if child.process else None
        if now - child.started_at >= self._healthy_after:
            child.backoff = self._first  # it ran well for a while: this is a new story
        log.warning("%s (pid %s) exited with code %s; restarting it in %.1fs", child.name,
                    child.process.pid if child.process else "?", code, child.backoff)  # fmt: skip
        child.restart_at = now + child.backoff
        child.backoff = min(self._max, child.backoff * 2)
        self._on_exit(child)

    def retire(self, child: Child | None = None) -> Child | None:
        """Stop ``child`` (default: the newest) gracefully with SIGTERM and stop supervising it."""
        if not self.children:
            return None
        child = child or self.children[-1]
        self.children.remove(child)
        if child.alive():
            assert child.process is not None
            child.process.send_signal(signal.SIGTERM)
            self._retired.append(child)
        return child

    async def stop_all(self, *, grace_seconds: float = 60.0) -> None:
        """SIGTERM every child, wait up to ``grace_seconds`` for their graceful exits, then kill the rest."""
        children, self.children, retired, self._retired = self.children, [], self._retired, []
        for child in children:
            if child.alive():
                assert child.process is not None
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_seconds
        for child in children + retired:
            if child.process is None:
                continue
            try:
                await asyncio.to_thread(child.process.wait, max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop within %.0fs: killing it", child.name, grace_seconds)
                child.process.kill()
                await asyncio.to_thread(child.process.wait)
