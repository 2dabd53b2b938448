"""Resource use read from /proc: the process's resident memory and CPU share, and the host's idle cores."""

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


@dataclass
class HostIdleSampler:
    """Idle cores of the whole host between samples at least ``window_seconds`` apart (``/proc/stat``).

    :meth:`sample` answers None until two samples lie a window apart, and where ``/proc/stat`` is absent;
    a sample taken sooner than the window after the last returns the last reading unchanged, so a reading
    always covers at least the window. The host's figures, not a container's CPU quota.
    """

    window_seconds: float = 0.5
    _ticks: tuple[int, int] | None = None  # (idle, total) jiffies at the start of the current window
    _at: float = 0.0
    _reading: float | None = None

    def sample(self) -> float | None:
        ticks, now = _host_ticks(), time.monotonic()
        if ticks is None:
            return None
        if self._ticks is None or now - self._at >= self.window_seconds:
            if self._ticks is not None and ticks[1] > self._ticks[1]:
                idle_share = (ticks[0] - self._ticks[0]) / (ticks[1] - self._ticks[1])
                self._reading = round(idle_share * (os.cpu_count() or 1), 2)
            self._ticks, self._at = ticks, now
        return self._reading


def _host_ticks() -> tuple[int, int] | None:
    """(idle, total) jiffies of all CPUs since boot; idle counts I/O wait, which a new process could use."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(value) for value in stat.readline().split()[1:]]
    except OSError:
        return None
    # user nice system idle iowait irq softirq steal (guest time is already inside user and nice).
    return fields[3] + fields[4], sum(fields[:8])
