"""Supervised tasks: a failing side task is logged with its traceback, counted, and started again."""

from __future__ import annotations

import asyncio
import logging

import pytest
from prometheus_client import CollectorRegistry

from conveyor.db.values import storable, unstorable
from conveyor.pipeline.lifecycle.tasks import Supervisor, task_failures_counter


async def test_a_failing_task_is_restarted_with_backoff_counted_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    counter = task_failures_counter(CollectorRegistry())
    supervisor = Supervisor(counter, first_backoff_seconds=0.01)
    runs: list[int] = []
    finished = asyncio.Event()

    async def flaky() -> None:
        runs.append(len(runs))
        if len(runs) < 3:
            raise RuntimeError(f"boom {len(runs)}")
        finished.set()

    with caplog.at_level(logging.ERROR, logger="conveyor.pipeline.lifecycle.tasks"):
        supervisor.start("flaky", flaky)
        await asyncio.wait_for(finished.wait(), 5)
    await supervisor.close()

    assert len(runs) == 3
    assert supervisor.failure_counts == {"flaky": 2}
    assert counter.labels("flaky")._value.get() == 2
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 2 and "boom 1" in str(tracebacks[0].exc_info[1])  # type: ignore[index]


async def test_close_cancels_tasks_that_run_forever() -> None:
    supervisor = Supervisor()
    task = supervisor.start("forever", lambda: asyncio.sleep(3600))
    await supervisor.close()
    assert task.cancelled()


def test_a_name_is_supervised_once() -> None:
    async def scenario() -> None:
        supervisor = Supervisor()
        supervisor.start("one", lambda: asyncio.sleep(0))
        with pytest.raises(ValueError, match="already supervised"):
            supervisor.start("one", lambda: asyncio.sleep(0))
        await supervisor.close()

    asyncio.run(scenario())


def test_non_finite_numbers_are_unstorable_and_storable_replaces_them() -> None:
    assert unstorable({"a": [1.0, float("nan")]}) == "a[1]"
    assert unstorable({"x": float("inf")}) == "x"
    assert storable({"k\x00": ["v\x00", float("nan"), "\ud800", 3]}) == {"k\ufffd": ["v\ufffd", None, "?", 3]}
