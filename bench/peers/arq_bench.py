"""arq: enqueue N no-op jobs, then a burst worker drains them (default 0.5 s poll, and a 10 ms poll)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from arq import create_pool
from arq.connections import RedisSettings
from arq.worker import Worker


async def noop(ctx: dict[str, Any]) -> None:
    return None


async def main(host: str, port: int, jobs: int) -> None:
    settings = RedisSettings(host=host, port=port, database=3)
    redis = await create_pool(settings)
    await redis.flushdb()
    for variant, poll_delay in (("default (0.5 s poll)", 0.5), ("10 ms poll", 0.01)):
        for _ in range(jobs):
            await redis.enqueue_job("noop")
        worker = Worker(
            functions=[noop],
            redis_settings=settings,
            burst=True,
            poll_delay=poll_delay,
            max_jobs=10,
            keep_result=0,
            handle_signals=False,
        )
        started = time.perf_counter()
        await worker.async_run()
        seconds = time.perf_counter() - started
        await worker.close()
        print(json.dumps({"peer": "arq", "variant": variant, "jobs": jobs, "seconds": seconds}))
    await redis.flushdb()
    await redis.aclose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
