"""The ``conveyor`` command: builds the settings once and dispatches to a subcommand."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from conveyor import __version__, logs
from conveyor import settings as settings_module
from conveyor.commands import admin, api, backfill, ingest, jobs, limits, run, stack, worker
from conveyor.db.errors import ConfigurationError, ConveyorError

COMMAND_GROUPS = (admin, stack, ingest, backfill, worker, api, jobs, limits, run)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="conveyor",
        description="File uploads to processed results: MinIO -> Kafka -> PostgreSQL -> workers.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"conveyor {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in COMMAND_GROUPS:
        group.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit status."""
    args = build_parser().parse_args(argv)
    try:
        settings = settings_module.load()
        logs.configure(settings.log, verbose=args.verbose)
        status: int = args.handler(settings, args)
    except ConveyorError as exc:
        print(f"conveyor: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ConfigurationError) else 1
    except KeyboardInterrupt:
        return 130
    return status


if __name__ == "__main__":
    sys.exit(main())
