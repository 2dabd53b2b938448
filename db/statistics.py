"""What the planner knows of the engine's busiest tables, and measuring them again when they outgrew it."""

from __future__ import annotations

from conveyor.db.connection import Connection, translate_errors
from conveyor.db.sql import QUERIES


async def outgrown(conn: Connection, *, slack_pages: int) -> list[str]:
    """The busy tables now larger than twice their last measured size plus ``slack_pages``, by name."""
    with translate_errors():
        return [row["table_name"] for row in await conn.fetch(QUERIES["statistics_outgrown"], slack_pages)]


async def refresh(conn: Connection) -> None:
    """ANALYZE the busy tables: a sample of each (at most 30,000 rows at the default target)."""
    with translate_errors():
        await conn.execute(QUERIES["statistics_refresh"])
