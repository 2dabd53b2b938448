"""Retry policy: when a failed attempt runs again. A pure function of the attempt number and the time."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from pydantic import BaseModel, Field, model_validator


class RetryPolicy(BaseModel):
    """Exponential backoff with full jitter and a cap: delay = U(1 - jitter, 1) * min(cap, base * factor^(n-1))."""

    base_seconds: float = Field(1.0, gt=0)
    factor: float = Field(2.0, ge=1)
    cap_seconds: float = Field(300.0, gt=0)
    #: 0 = no jitter; 1 = anywhere between 0 and the computed delay.
    jitter: float = Field(0.5, ge=0, le=1)

    @model_validator(mode="after")
    def _cap_not_below_base(self) -> RetryPolicy:
        if self.cap_seconds < self.base_seconds:
            raise ValueError("cap_seconds must be at least base_seconds")
        return self

    def delay(self, attempt: int, rng: random.Random | None = None) -> timedelta:
        """The wait after failed attempt number ``attempt`` (1 = the first run)."""
        exponent = min(max(attempt - 1, 0), 64)  # bounded so huge attempt counts cannot overflow
        ceiling = min(self.cap_seconds, self.base_seconds * self.factor**exponent)
        spread = (rng or random).uniform(1.0 - self.jitter, 1.0)
        return timedelta(seconds=ceiling * spread)

    def next_attempt_at(self, attempt: int, now: datetime, rng: random.Random | None = None) -> datetime:
        """When attempt ``attempt + 1`` may start."""
        return now + self.delay(attempt, rng)


class RetryPolicies(BaseModel):
    """The default policy and per-job-type overrides."""

    default: RetryPolicy = Field(default_factory=RetryPolicy)
    by_job_type: dict[str, RetryPolicy] = Field(default_factory=dict)

    def for_type(self, job_type: str) -> RetryPolicy:
        return self.by_job_type.get(job_type, self.default)
