"""Where a benchmark's CPU goes: CPU seconds by process role, read from /proc.

A role is a process tree (PostgreSQL is its server and every backend it forked; the conveyor processes are
named by their command: ``conveyor worker``, ``conveyor ingest``...) or a single process (the benchmark's
own, whose children are the system under test). Whatever else the machine's CPUs did is a role of its own,
so the roles add up to the machine's busy time. A :class:`Tracker` sampled every second keeps a process that
exits within the span (an autoscaled worker stopping) at the CPU of its last sample; without the samples, its
CPU would leave its role for "everything else", and a role could even show less than nothing.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
ELSEWHERE = "everything else on the machine"


@dataclass(frozen=True)
class Process:
    pid: int
    parent: int
    cpu_seconds: float
    argv: list[str]


def processes() -> dict[int, Process]:
    """Every process now, with its CPU time (user and system) so far."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat, argv = (entry / "stat").read_text(), (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue  # it exited meanwhile
            fields = stat[stat.rindex(")") + 2 :].split()  # the command name in parentheses may hold spaces
            cpu = (int(fields[11]) + int(fields[12])) / TICKS_PER_SECOND
            found[int(entry.name)] = Process(int(entry.name), int(fields[1]), cpu, [a.decode() for a in argv if a])
    return found


class Tracker:
    """CPU seconds by role since the tracker was made, each process counted up to its latest :meth:`sample`."""

    def __init__(self, trees: Mapping[str, int], alone: Mapping[str, int]) -> None:
        """``trees`` by the root of each role's process tree, ``alone`` by the one process of each."""
        self.trees, self.alone = dict(trees), dict(alone)
        self._first, self._first_busy = _by_process(self.trees, self.alone), _machine_busy_seconds()
        self._latest, self._busy = dict(self._first), self._first_busy

    def sample(self) -> None:
        """Read every process now; one that has exited keeps what it had at the sample before."""
        self._latest.update(_by_process(self.trees, self.alone))
        self._busy = _machine_busy_seconds()

    def spent(self) -> dict[str, float]:
        """CPU seconds of each role from the tracker's making to a sample taken now, most first."""
        self.sample()
        totals = defaultdict[str, float](float)
        for pid, (role, seconds) in self._latest.items():
            totals[role] += seconds - (self._first[pid][1] if pid in self._first else 0.0)  # born since: all of it
        totals[ELSEWHERE] = self._busy - self._first_busy - sum(totals.values())
        return dict(sorted(totals.items(), key=lambda item: -item[1]))


def _by_process(trees: Mapping[str, int], alone: Mapping[str, int]) -> dict[int, tuple[str, float]]:
    """Each process of the roles now: its role and its CPU seconds so far."""
    procs, children = processes(), defaultdict[int, list[int]](list)
    for process in procs.values():
        children[process.parent].append(process.pid)
    found = {pid: (_named(procs[pid], role), procs[pid].cpu_seconds)
             for role, root in trees.items() for pid in _tree(children, root) if pid in procs}  # fmt: skip
    found.update((pid, (role, procs[pid].cpu_seconds)) for role, pid in alone.items() if pid in procs)
    return found


def _tree(children: Mapping[int, list[int]], root: int) -> list[int]:
    found, pending = [], [root]
    while pending:
        pid = pending.pop()
        found.append(pid)
        pending.extend(children.get(pid, []))
    return found


def _named(process: Process, role: str) -> str:
    """``conveyor <command>`` for a conveyor process (``python -m conveyor worker ...``), else ``role``."""
    if "conveyor" in process.argv[:3] and (at := process.argv.index("conveyor")) + 1 < len(process.argv):
        return f"conveyor {process.argv[at + 1]}"
    return role


def _machine_busy_seconds() -> float:
    """CPU time every CPU spent doing anything but waiting, since boot."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle, iowait = ticks[3], ticks[4]
    return (sum(ticks[:8]) - idle - iowait) / TICKS_PER_SECOND
