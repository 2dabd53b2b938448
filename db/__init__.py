"""The database: schema, migrations, named SQL (``queries/*.sql``) and one function per statement.

The only room that imports asyncpg; its errors are translated here into :mod:`conveyor.db.errors`.
Outside ``db``, only the engine (:mod:`conveyor.pipeline.engine`) calls the query modules.
"""

from __future__ import annotations
