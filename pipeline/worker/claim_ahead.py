"""How many jobs a worker claims ahead of its free slots: the jobs it finished within a short window.

Fast jobs (a backlog draining quickly) let a worker keep up to ``CLAIM_AHEAD_PER_SLOT`` more per slot
claimed, each waiting about the window for a slot; a long job never waits here while another worker is
free, because nothing finished recently and nothing is claimed ahead.
"""

from __future__ import annotations

from collections import deque

#: At most this many jobs per slot are claimed ahead (bench/RESULTS.md: one claim per 16 no-op jobs
#: was half a worker's time in round trips). At 4, a 16-slot process draining no-op jobs claimed 80 at a
#: time and waited for them to run before claiming again; at 16 the claim-ahead window binds instead
#: (about 20 ms of work), the next claim overlaps the jobs before it, and no-op jobs ran a fifth faster.
CLAIM_AHEAD_PER_SLOT = 16


class RecentFinishes:
    """The finish times of the last ``cap`` jobs that finished within ``window_seconds`` (0: none kept).

    Times come from one monotonic clock, so they arrive in order and expire from the oldest end: a count
    drops only what expired since the last one. The worker counts several times per claim, and a scan of
    every kept time cost up to 16 per slot each time (16,384 at the highest concurrency).
    """

    def __init__(self, window_seconds: float, cap: int) -> None:
        self.window_seconds = window_seconds
        self._times: deque[float] = deque(maxlen=cap)

    def add(self, finished: float) -> None:
        """A job finished at ``finished`` (monotonic seconds, never earlier than the last one added)."""
        if self.window_seconds:
            self._times.append(finished)

    def count(self, now: float) -> int:
        """How many of the kept jobs finished at ``now - window_seconds`` or later."""
        since, times = now - self.window_seconds, self._times
        while times and times[0] < since:
            times.popleft()
        return len(times)
