"""Backoff is a pure function of the attempt and the time."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from conveyor.pipeline.engine.retry import RetryPolicies, RetryPolicy

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_exponential_growth_up_to_the_cap_without_jitter() -> None:
    policy = RetryPolicy(base_seconds=1, factor=3, cap_seconds=20, jitter=0)
    assert [policy.delay(n).total_seconds() for n in range(1, 6)] == [1, 3, 9, 20, 20]
    assert policy.next_attempt_at(2, NOW) == NOW + timedelta(seconds=3)


def test_jitter_stays_within_its_band() -> None:
    policy = RetryPolicy(base_seconds=10, factor=2, cap_seconds=1000, jitter=0.5)
    rng = random.Random(7)
    delays = [policy.delay(3, rng).total_seconds() for _ in range(1000)]
    assert min(delays) >= 20 and max(delays) <= 40
    assert len(set(delays)) > 900, "jitter spreads retries apart"


def test_enormous_attempt_counts_do_not_overflow() -> None:
    assert RetryPolicy(jitter=0, cap_seconds=60).delay(10_000).total_seconds() == 60


def test_per_type_overrides() -> None:
    fast = RetryPolicy(base_seconds=0.1, cap_seconds=1)
    policies = RetryPolicies(by_job_type={"checksum": fast})
    assert policies.for_type("checksum") is fast
    assert policies.for_type("other") is policies.default


def test_cap_below_base_is_rejected() -> None:
    with pytest.raises(ValidationError, match="cap_seconds"):
        RetryPolicy(base_seconds=10, cap_seconds=1)
