"""Procrastinate: defer N no-op tasks in bulk, then one worker (concurrency C) drains them."""

from __future__ import annotations

import asyncio
import json
import sys
import time

import procrastinate


async def main(conninfo: str, jobs: int) -> None:
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=conninfo))

    @app.task(name="noop", queue="bench")
    async def noop() -> None:
        return None

    async with app.open_async():
        await app.schema_manager.apply_schema_async()
        for concurrency in (1, 10):
            await noop.batch_defer_async(*[{} for _ in range(jobs)])
            started = time.perf_counter()
            await app.run_worker_async(
                queues=["bench"], concurrency=concurrency, wait=False, install_signal_handlers=False
            )
            seconds = time.perf_counter() - started
            print(
                json.dumps(
                    {"peer": "procrastinate", "variant": f"concurrency {concurrency}", "jobs": jobs, "seconds": seconds}
                )
            )


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
