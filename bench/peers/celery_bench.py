"""Celery with a Redis broker: enqueue N no-op tasks, start a worker (prefork, then solo), time the drain."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from celery_app import BROKER, _counter, noop


def drain(pool: str, concurrency: int, jobs: int) -> float:
    _counter.flushdb()
    with noop.app.producer_pool.acquire(block=True) as producer:
        for _ in range(jobs):
            noop.apply_async(producer=producer)
    argv = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "celery_app",
        "worker",
        "-P",
        pool,
        "-c",
        str(concurrency),
        "--without-heartbeat",
        "--without-gossip",
        "--without-mingle",
        "-l",
        "WARNING",
    ]
    env = {**os.environ, "BENCH_CELERY_BROKER": BROKER}
    worker = subprocess.Popen(argv, cwd=os.path.dirname(__file__), env=env)
    try:
        # Worker start-up (a second or two) is not queue throughput: time from the first job done.
        deadline = time.perf_counter() + 600
        while int(_counter.get("bench:done") or 0) < 1 and time.perf_counter() < deadline:
            time.sleep(0.005)
        started = time.perf_counter()
        while int(_counter.get("bench:done") or 0) < jobs and time.perf_counter() < deadline:
            time.sleep(0.01)
        return (time.perf_counter() - started) * jobs / (jobs - 1)
    finally:
        worker.terminate()
        worker.wait(30)


def main(jobs: int) -> None:
    for pool, concurrency in (("prefork", 2), ("solo", 1)):
        seconds = drain(pool, concurrency, jobs)
        print(json.dumps({"peer": "celery", "variant": f"{pool} -c {concurrency}", "jobs": jobs, "seconds": seconds}))
    _counter.flushdb()


if __name__ == "__main__":
    main(int(sys.argv[1]))
