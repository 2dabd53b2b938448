"""The Celery app of the peer benchmark: a no-op task that counts itself in Redis."""

from __future__ import annotations

import os

import redis
from celery import Celery

BROKER = os.environ.get("BENCH_CELERY_BROKER", "redis://127.0.0.1:16379/4")
app = Celery("bench", broker=BROKER)
app.conf.update(
    task_ignore_result=True,
    worker_prefetch_multiplier=16,
    task_acks_late=False,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)
_counter = redis.Redis.from_url(BROKER)


@app.task(name="noop")
def noop() -> None:
    _counter.incr("bench:done")
