"""The process supervisor restarts children that die (with a doubling backoff) and retires them gracefully."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

from conveyor.pipeline.lifecycle.processes import Child, ProcessSupervisor


def spawner(code: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", code])


async def test_a_child_that_dies_is_restarted_after_a_doubling_backoff() -> None:
    exits: list[int | None] = []

    def on_exit(child: Child) -> None:
        exits.append(child.process.returncode if child.process else None)

    supervisor = ProcessSupervisor(first_backoff_seconds=0.2, max_backoff_seconds=0.4, on_exit=on_exit)
    child = supervisor.add("crasher", lambda: spawner("raise SystemExit(3)"))
    try:
        deadline = time.monotonic() + 10
        while child.restarts < 3 and time.monotonic() < deadline:
            supervisor.check_once()
            await asyncio.sleep(0.02)
        assert child.restarts == 3 and exits[:3] == [3, 3, 3]
        assert child.backoff == 0.4, "doubled from 0.2, capped at 0.4"
    finally:
        await supervisor.stop_all(grace_seconds=5)


async def test_retired_children_stop_gracefully_and_are_reaped() -> None:
    supervisor = ProcessSupervisor()
    sleepers = [supervisor.add(f"sleeper-{i}", lambda: spawner("import time; time.sleep(60)")) for i in range(2)]
    retired = supervisor.retire()
    assert retired is sleepers[1] and len(supervisor) == 1
    assert retired.process is not None and retired.process.wait(10) == -15, "SIGTERM, not a kill"
    assert supervisor.check_once() == [], "a retired child is not restarted"
    await supervisor.stop_all(grace_seconds=5)
    assert sleepers[0].process is not None and sleepers[0].process.returncode == -15
    assert len(supervisor) == 0
