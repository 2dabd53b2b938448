"""``conveyor api``: the HTTP API (jobs, workers, objects, dead letters, /health, /metrics)."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from conveyor.settings import Settings, refuse_exposed_defaults


def register(commands: Any) -> None:
    api = commands.add_parser("api", help="serve the HTTP API")
    api.add_argument("--host", help="default: settings.api.host")
    api.add_argument("--port", type=int, help="default: settings.api.port")
    api.set_defaults(handler=_api)


def _api(settings: Settings, args: argparse.Namespace) -> int:
    updates = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    settings = settings.model_copy(update={"api": settings.api.model_copy(update=updates)})
    refuse_exposed_defaults(settings, settings.api.host, "conveyor api")
    # Loaded here, not with the parser: see conveyor.commands.serving.
    from conveyor.commands.serving import serve

    asyncio.run(serve(settings))
    return 0
