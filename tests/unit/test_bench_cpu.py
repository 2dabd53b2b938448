"""bench/cpu: a process that exits within the span keeps the CPU it had at its last sample."""

from __future__ import annotations

import subprocess
import sys

from bench import cpu

BURN = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass\nprint(flush=True)\ninput()"


def test_a_process_that_exits_keeps_the_cpu_of_its_last_sample() -> None:
    burner = subprocess.Popen([sys.executable, "-c", BURN], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert burner.stdin is not None and burner.stdout is not None
    sampled, unsampled = cpu.Tracker({"burner": burner.pid}, {}), cpu.Tracker({"burner": burner.pid}, {})
    burner.stdout.readline()  # it has burnt its CPU and now waits
    sampled.sample()
    burner.stdin.close()
    burner.wait(10)
    assert sampled.spent()["burner"] >= 0.25
    assert unsampled.spent()["burner"] < 0.05, "read only at the ends, an exited process takes its CPU with it"
