"""The ``worker`` settings section: how a worker process claims and runs jobs, and how it autoscales."""

from __future__ import annotations

from pydantic import BaseModel, Field


class WorkerSettings(BaseModel):
    """How a worker process claims and runs jobs."""

    concurrency: int = Field(8, ge=1, le=1024)
    job_types: list[str] = Field(default_factory=list)
    #: Fallback poll when no wake-up arrives; jittered by ±`poll_jitter` so workers don't synchronise.
    poll_interval_seconds: float = Field(1.0, gt=0)
    poll_jitter: float = Field(0.2, ge=0, le=1)
    #: When full, wait this long after a slot frees before claiming, so one claim fills several slots.
    claim_cooldown_seconds: float = Field(0.005, ge=0, le=1)
    #: A wake-up within this long of the last claim waits out the rest: under load the wake-ups that
    #: arrive meanwhile become one claim of several jobs instead of a claim each. At light load (a claim
    #: longer ago than this) a wake-up claims at once.
    wakeup_claim_interval_seconds: float = Field(0.02, ge=0, le=1)
    #: Under load, a batch of completions waits until this long after the last one started (or until
    #: `concurrency` completions wait), so one transaction writes several. At light load each is written
    #: at once.
    completion_interval_seconds: float = Field(0.02, ge=0, le=1)
    #: Claim ahead of free slots when jobs finish fast: as many extra jobs as finished in the last this many
    #: seconds (at most 16 x `concurrency`), so each waits about this long for a slot and one claim feeds the
    #: slots for a while instead of one claim per freed slot. Long jobs finish too slowly to be claimed
    #: ahead, so none waits here while another worker is free; 0 turns it off.
    claim_ahead_seconds: float = Field(0.02, ge=0, le=1)
    heartbeat_interval_seconds: float = Field(5.0, gt=0)
    #: A worker_health_logs row (status, jobs in flight, RSS, CPU) this often.
    health_log_interval_seconds: float = Field(30.0, gt=0)
    shutdown_grace_seconds: float = Field(30.0, ge=0)
    #: Modules whose register(registry) adds user handlers, e.g. ["myco.handlers"].
    handler_modules: list[str] = Field(default_factory=list)
    #: Autoscaling (`conveyor worker --autoscale MIN:MAX`): add a process when the ready backlog per
    #: process stays above this for `autoscale_patience` checks; retire one after as many checks with
    #: nothing ready and the jobs running filling at most half the slots of the processes left.
    autoscale_backlog_per_process: int = Field(50, ge=1)
    autoscale_interval_seconds: float = Field(5.0, gt=0)
    autoscale_patience: int = Field(2, ge=1)
