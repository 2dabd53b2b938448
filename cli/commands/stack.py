"""``conveyor stack up | down | status | logs | reset``."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from conveyor.settings import Settings
from conveyor.stack.browser import install_browser
from conveyor.stack.kubernetes import install_kubernetes_tools
from conveyor.stack.manager import Stack, format_table


def register(commands: Any) -> None:
    parser = commands.add_parser("stack", help="run PostgreSQL, Redis, Kafka and MinIO locally, without Docker")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    up = actions.add_parser("up", help="install (cached), start and wait for the services; idempotent")
    up.add_argument("services", nargs="*", help="only these (default: all)")
    up.add_argument("--s3", choices=["minio", "versitygw"], help="the S3 server (default: settings.stack.s3_server)")
    up.add_argument("--record", type=Path, help="append the names of the services this call started to FILE")
    up.set_defaults(handler=_up)

    down = actions.add_parser("down", help="stop the processes `up` started")
    down.add_argument("services", nargs="*", help="only these (default: all)")
    down.add_argument("--from-record", type=Path, help="stop only the services listed in FILE (see up --record)")
    down.add_argument("--s3", choices=["minio", "versitygw"])
    down.set_defaults(handler=_down)

    status = actions.add_parser("status", help="is each service running and answering?")
    status.add_argument("--json", action="store_true")
    status.add_argument("--s3", choices=["minio", "versitygw"])
    status.set_defaults(handler=_status)

    logs = actions.add_parser("logs", help="show a service's log")
    logs.add_argument("service", nargs="?", help="default: every service")
    logs.add_argument("-n", "--lines", type=int, default=50)
    logs.add_argument("-f", "--follow", action="store_true")
    logs.add_argument("--s3", choices=["minio", "versitygw"])
    logs.set_defaults(handler=_logs)

    tools = actions.add_parser(
        "tools", help="install or find what the tests use beside the services: chromium, helm and the CRDs (cached)"
    )
    tools.set_defaults(handler=_tools)

    reset = actions.add_parser("reset", help="stop everything and delete the stack's data (not the build cache)")
    reset.add_argument("--s3", choices=["minio", "versitygw"])
    reset.set_defaults(handler=_reset)


def _stack(settings: Settings, args: argparse.Namespace) -> Stack:
    # Readiness probes expect refused connections while servers start; aiokafka would log each one.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    if args.s3:
        settings = settings.model_copy(update={"stack": settings.stack.model_copy(update={"s3_server": args.s3})})
    return Stack(settings)


def _up(settings: Settings, args: argparse.Namespace) -> int:
    stack = _stack(settings, args)
    began = time.monotonic()
    started = asyncio.run(stack.up(args.services))
    if args.record:
        with args.record.open("a") as record:
            record.writelines(f"{name}\n" for name in started)
    verb = f"started {', '.join(started)}" if started else "already running"
    print(f"[stack] {verb} in {time.monotonic() - began:.1f}s", file=sys.stderr)
    print(format_table(asyncio.run(stack.status(args.services))))
    return 0


def _down(settings: Settings, args: argparse.Namespace) -> int:
    names = list(args.services)
    if args.from_record:
        recorded = args.from_record.read_text().split() if args.from_record.exists() else []
        names = [name for name in recorded if not names or name in names]
        if not names:
            print("[stack] nothing recorded to stop", file=sys.stderr)
            return 0
    stopped = _stack(settings, args).down(names)
    print(f"[stack] stopped {', '.join(stopped) if stopped else 'nothing (none running)'}", file=sys.stderr)
    return 0


def _status(settings: Settings, args: argparse.Namespace) -> int:
    statuses = asyncio.run(_stack(settings, args).status())
    if args.json:
        print(json.dumps([vars(s) for s in statuses], indent=2))
    else:
        print(format_table(statuses))
    return 0 if all(s.state == "running" for s in statuses) else 3


def _logs(settings: Settings, args: argparse.Namespace) -> int:
    stack = _stack(settings, args)
    paths = [s.paths.log(s.name) for s in stack.select([args.service] if args.service else [])]
    existing = [str(p) for p in paths if p.exists()]
    if not existing:
        print("[stack] no logs yet", file=sys.stderr)
        return 1
    argv = ["tail", "-n", str(args.lines), *(["-F"] if args.follow else []), *existing]
    return subprocess.call(argv)


def _tools(settings: Settings, args: argparse.Namespace) -> int:
    tools = install_kubernetes_tools(settings.stack)
    print(f"chromium {install_browser()}")
    print(f"helm {tools.helm}")
    for crd in tools.crd_files:
        print(f"crd  {crd}")
    return 0


def _reset(settings: Settings, args: argparse.Namespace) -> int:
    _stack(settings, args).reset()
    print(f"[stack] stopped and removed {settings.stack.state_dir}", file=sys.stderr)
    return 0
