"""Where a benchmark's CPU goes: CPU seconds by process role, read from /proc.

A role is a process tree (PostgreSQL is its server and every backend it forked; the conveyor processes are
named by their command: ``conveyor worker``, ``conveyor ingest``...) or a single process (the benchmark's
own, whose children are the system under test). Whatever else the machine's CPUs did is a role of its own,
so the roles add up to the machine's busy time. A process that exits between two readings takes its CPU
with it: compare readings of processes alive through the span measured.
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


def reading(trees: Mapping[str, int], alone: Mapping[str, int]) -> dict[str, float]:
    """CPU seconds so far of each role: ``trees`` by the root of each, ``alone`` by one process each."""
    procs, children = processes(), defaultdict[int, list[int]](list)
    for process in procs.values():
        children[process.parent].append(process.pid)
    totals = defaultdict[str, float](float)
    for role, root in trees.items():
        for pid in _tree(children, root):
            if pid in procs:
                totals[_named(procs[pid], role)] += procs[pid].cpu_seconds
    for role, pid in alone.items():
        totals[role] += procs[pid].cpu_seconds if pid in procs else 0.0
    totals[ELSEWHERE] = _machine_busy_seconds() - sum(totals.values())
    return dict(totals)


def spent(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
    """CPU seconds of each role between two readings, most first (a role born meanwhile from nothing)."""
    used = ((role, seconds - before.get(role, 0.0)) for role, seconds in after.items())
    return dict(sorted(used, key=lambda item: -item[1]))


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
