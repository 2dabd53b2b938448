"""The health monitor: /health's answer comes from the last round of checks, never from a check per call."""

from __future__ import annotations

import asyncio

import pytest

from conveyor.api import health
from conveyor.api.health import HealthMonitor


class Service:
    """A check that counts its calls and fails while ``down``."""

    def __init__(self) -> None:
        self.calls, self.down, self.hang = 0, False, False

    async def __call__(self) -> None:
        self.calls += 1
        if self.hang:
            await asyncio.sleep(60)
        if self.down:
            raise ConnectionRefusedError("connection refused")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _monitor(clock: Clock) -> tuple[HealthMonitor, Service, Service]:
    required, optional = Service(), Service()
    monitor = HealthMonitor({"postgres": (required, True), "kafka": (optional, False)}, interval_seconds=2,
                            clock=clock)  # fmt: skip
    return monitor, required, optional


async def test_reports_read_the_last_round_and_never_check() -> None:
    clock = Clock()
    monitor, postgres, kafka = _monitor(clock)
    body, code = monitor.report()
    assert code == 503 and body.services["postgres"].error == "not checked yet"
    await monitor.run_once()
    for _ in range(100):
        body, code = monitor.report()
    assert (body.status, code) == ("healthy", 200) and (postgres.calls, kafka.calls) == (1, 1)
    kafka.down = True
    assert monitor.report()[0].status == "healthy", "a change shows with the next round, not before"
    await monitor.run_once()
    body, code = monitor.report()
    assert (body.status, code) == ("degraded", 200) and "ConnectionRefusedError" in (body.services["kafka"].error or "")
    postgres.down = True
    await monitor.run_once()
    assert monitor.report()[1] == 503


async def test_stale_answers_count_as_down() -> None:
    clock = Clock()
    monitor, _, _ = _monitor(clock)
    await monitor.run_once()
    clock.now += 2 * health.STALE_ROUNDS + health.CHECK_TIMEOUT_SECONDS - 0.1
    assert monitor.report()[1] == 200
    clock.now += 0.2
    body, code = monitor.report()
    assert code == 503 and body.services["kafka"].error == "not checked for 8 s"


async def test_a_hanging_check_is_down_after_the_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(health, "CHECK_TIMEOUT_SECONDS", 0.05)
    monitor, _, kafka = _monitor(Clock())
    kafka.hang = True
    await asyncio.wait_for(monitor.run_once(), 1)
    body, code = monitor.report()
    assert (
        code == 200
        and body.services["kafka"].status == "down"
        and "TimeoutError" in (body.services["kafka"].error or "")
    )
