"""Session advisory locks: how one process of the cluster is elected to run cluster-wide maintenance.

The lock belongs to the session that took it: it is held until released, or until the connection ends.
A leader that dies (SIGKILL, a lost host) drops its connection, PostgreSQL releases the lock, and the next
process to try takes it.
"""

from __future__ import annotations

from conveyor.db.connection import Connection, translate_errors
from conveyor.db.sql import QUERIES


async def try_lock(conn: Connection, key: int) -> bool:
    """Take advisory lock ``key`` for ``conn``'s session if nobody holds it; whether this session holds it now."""
    with translate_errors():
        return bool(await conn.fetchval(QUERIES["leader_try_lock"], key))


async def unlock(conn: Connection, key: int) -> bool:
    with translate_errors():
        return bool(await conn.fetchval(QUERIES["leader_unlock"], key))


async def alive(conn: Connection) -> None:
    """A round trip on the session: while it succeeds, the session (and every lock it holds) is alive."""
    with translate_errors():
        await conn.fetchval(QUERIES["ping"])
