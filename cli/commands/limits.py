"""``conveyor limits [list] | set | clear``: flow limits of concurrency keys and job types, and what waits.

``conveyor limits`` prints every limited scope with its RUNNING jobs against its cap, its rate's tokens,
and the ready jobs waiting on it (with the oldest one's age). ``set`` replaces a scope's limits::

    conveyor limits set --job-type ocr --max-running 4 --rate 20
    conveyor limits set --key uploads/tenant-a --weight 3
    conveyor limits clear --job-type ocr
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from conveyor import runtime
from conveyor.db.errors import ConveyorError
from conveyor.db.records import FlowLimit, FlowLimitRow, FlowScope
from conveyor.settings import Settings


def register(commands: Any) -> None:
    limits = commands.add_parser("limits", help="flow limits of keys and job types, and the jobs waiting on them")
    actions = limits.add_subparsers(dest="action", metavar="ACTION")
    limits.set_defaults(handler=show)
    actions.add_parser("list", help="every limited key and job type (the default)").set_defaults(handler=show)
    setting = actions.add_parser("set", help="set (replace) the limits of a key or a job type")
    _scope_arguments(setting)
    setting.add_argument("--max-running", type=int, help="at most this many RUNNING at once, cluster-wide")
    setting.add_argument("--rate", type=float, dest="rate_per_second", help="at most this many starts per second")
    setting.add_argument("--burst", type=int, help="starts allowed at once after a pause (default: one second's)")
    setting.add_argument("--weight", type=int, default=1, help="a key's fair share against other keys (default 1)")
    setting.set_defaults(handler=_set)
    clearing = actions.add_parser("clear", help="remove the limits of a key or a job type")
    _scope_arguments(clearing)
    clearing.set_defaults(handler=_clear)


def _scope_arguments(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--key", help="a concurrency key")
    which.add_argument("--job-type", help="a job type (its jobs, whatever their key)")


def _scope(args: argparse.Namespace) -> tuple[FlowScope, str]:
    return (FlowScope.KEY, args.key) if args.key is not None else (FlowScope.JOB_TYPE, args.job_type)


def show(settings: Settings, args: argparse.Namespace) -> int:
    async def fetch() -> list[FlowLimitRow]:
        async with runtime.open_engine(settings) as engine:
            return await engine.flow.all()

    rows = asyncio.run(fetch())
    if not rows:
        print("no flow limits: every job runs as soon as a worker is free, fairly across concurrency keys")
    for row in rows:
        print(describe(row))
    return 0


def describe(row: FlowLimitRow) -> str:
    """One line: the scope, its caps against what runs, and the ready jobs waiting on it."""
    cap = f"running {row.running}/{row.max_running}" if row.max_running else f"running {row.running}"
    rate = f"  rate {row.rate_per_second:g}/s (tokens {row.tokens or 0:.1f}/{row.burst})" if row.rate_per_second else ""
    weight = f"  weight {row.weight}" if row.weight != 1 else ""
    waiting = f"  ready {row.ready} (oldest {row.oldest_ready_seconds:.1f}s)" if row.ready else "  ready 0"
    name = row.name or "''"
    return f"{row.scope.value:<8} {name:<30} {cap}{rate}{weight}{waiting}  [{row.set_by.value}]"


def _set(settings: Settings, args: argparse.Namespace) -> int:
    scope, name = _scope(args)
    wanted = FlowLimit(scope=scope, name=name, max_running=args.max_running, rate_per_second=args.rate_per_second,
                       burst=args.burst, weight=args.weight)  # fmt: skip

    async def apply() -> FlowLimit:
        async with runtime.open_engine(settings) as engine:
            return await engine.flow.set(wanted)

    try:
        stored = asyncio.run(apply())
    except ConveyorError as exc:
        print(f"conveyor limits set: {exc}", file=sys.stderr)
        return 2
    print(f"{scope.value} {name!r}: max_running={stored.max_running} rate_per_second={stored.rate_per_second} "
          f"burst={stored.burst} weight={stored.weight}")  # fmt: skip
    return 0


def _clear(settings: Settings, args: argparse.Namespace) -> int:
    scope, name = _scope(args)

    async def apply() -> bool:
        async with runtime.open_engine(settings) as engine:
            return await engine.flow.clear(scope, name)

    if not asyncio.run(apply()):
        print(f"conveyor limits clear: no limit on {scope.value} {name!r}", file=sys.stderr)
        return 1
    print(f"{scope.value} {name!r}: limits cleared")
    return 0
