"""Real PostgreSQL for engine tests: a migrated template database, cloned fresh for each test."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from conveyor.db.connection import Pool
from conveyor.pipeline.engine import Engine
from conveyor.pipeline.engine.retry import RetryPolicies, RetryPolicy


class FakeClock:
    """An injectable clock that moves only when told."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


#: Deterministic backoff for tests: 10 s, 20 s, 40 s ... capped at 60 s, no jitter.
TEST_RETRY = RetryPolicies(default=RetryPolicy(base_seconds=10, factor=2, cap_seconds=60, jitter=0))


@pytest.fixture
def engine(pool: Pool, clock: FakeClock) -> Engine:
    return Engine(pool, retry=TEST_RETRY, lease_grace_seconds=5, clock=clock)
