"""``conveyor config``, ``conveyor migrate`` and ``conveyor bootstrap``."""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from conveyor import bootstrap as bootstrap_module
from conveyor.db import migrate
from conveyor.settings import Settings, masked


def register(commands: Any) -> None:
    config = commands.add_parser("config", help="print the effective configuration (secrets masked)")
    config.set_defaults(handler=_config)

    migrate_parser = commands.add_parser("migrate", help="apply pending database migrations")
    migrate_parser.set_defaults(handler=_migrate)

    bootstrap = commands.add_parser("bootstrap", help="create buckets, Kafka topics and bucket notification rules")
    bootstrap.add_argument(
        "--no-notifications", action="store_true",
        help="skip bucket notification rules (servers with server-wide events, such as versitygw)",
    )  # fmt: skip
    bootstrap.set_defaults(handler=_bootstrap)


def _config(settings: Settings, args: argparse.Namespace) -> int:
    print(json.dumps(masked(settings), indent=2))
    return 0


def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    applied = asyncio.run(apply_migrations(settings))
    for migration in applied:
        print(f"applied {migration.version:04d}_{migration.name}")
    if not applied:
        print("database is up to date")
    return 0


async def apply_migrations(settings: Settings) -> list[migrate.Migration]:
    return await migrate.migrate_database(settings.postgres)


def _bootstrap(settings: Settings, args: argparse.Namespace) -> int:
    notifications = not args.no_notifications and settings.stack.s3_server == "minio"
    created = asyncio.run(bootstrap_module.bootstrap(settings.kafka, settings.s3, notifications=notifications))
    for kind, names in created.items():
        print(f"{kind}: {', '.join(names) if names else 'nothing to do'}")
    return 0
