"""conveyor: file uploads to processed results (S3 bucket events through Kafka into a PostgreSQL job engine).

The package has one room per concern; dependencies point one way, each room importing only those below it::

    conveyor.commands, conveyor.main   the command line (with conveyor.stack, the native local stack)
    conveyor.api                       the HTTP API and the cluster gauges it exports
    conveyor.ingest                    bucket events from Kafka become jobs, exactly once per upload
    conveyor.pipeline                  the job engine, the worker runtime, maintenance and the handlers
    conveyor.db                        the schema, migrations and every SQL statement (the only asyncpg user)

Handler authors need :mod:`conveyor.testing` and :mod:`conveyor.pipeline.handlers`.
"""

from __future__ import annotations

from importlib import metadata

try:
    __version__ = metadata.version("conveyor")
except metadata.PackageNotFoundError:  # running from a checkout that was never installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
