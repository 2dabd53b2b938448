"""The process's own resource use, read from /proc: resident memory and CPU share since the last sample."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

_PAGE = os.sysconf("SC_PAGE_SIZE")
_TICKS = os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int | None = None) -> int:
    """Resident set size of ``pid`` (default: this process)."""
    with open(f"/proc/{pid or 'self'}/statm") as statm:
        return int(statm.read().split()[1]) * _PAGE


@dataclass
class CpuSampler:
    """CPU use of this process, as a percentage of one core, between successive calls to :meth:`sample`."""

    _cpu: float = 0.0
    _wall: float = 0.0

    def sample(self) -> float:
        with open("/proc/self/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / _TICKS
        wall = time.monotonic()
        percent = 100.0 * (cpu - self._cpu) / (wall - self._wall) if self._wall else 0.0
        self._cpu, self._wall = cpu, wall
        return round(percent, 1)
