"""Named SQL statements, loaded once from ``db/queries/*.sql``.

A file holds several statements, each introduced by a header and documented by the comments under it::

    -- name: job_claim
    -- Claim up to $3 ready jobs of types $1 for worker $2.
    WITH ...

Python code refers to statements only by their name, as keys of :data:`QUERIES`.
"""

from __future__ import annotations

import re
from importlib import resources
from typing import LiteralString, cast

_HEADER = re.compile(r"^-- name: ([a-z0-9_]+)[ \t]*$", re.MULTILINE)


def parse(text: str, *, origin: str = "<sql>") -> dict[str, LiteralString]:
    """Split ``text`` into ``{name: statement}``; text before the first header is ignored.

    Raises ``ValueError`` on a duplicate name or an empty statement.
    """
    parts = _HEADER.split(text)
    statements: dict[str, LiteralString] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        statement = body.strip()
        if not _strip_comments(statement):
            raise ValueError(f"{origin}: statement {name!r} is empty")
        if name in statements:
            raise ValueError(f"{origin}: statement {name!r} is defined twice")
        statements[name] = cast(LiteralString, statement)
    return statements


def _strip_comments(statement: str) -> str:
    return "\n".join(line for line in statement.splitlines() if not line.lstrip().startswith("--")).strip()


def load_queries() -> dict[str, LiteralString]:
    """Every named statement of every ``db/queries/*.sql`` file; names are unique across files."""
    queries: dict[str, LiteralString] = {}
    for file in sorted(resources.files("conveyor.db.queries").iterdir(), key=lambda f: f.name):
        if not file.name.endswith(".sql"):
            continue
        for name, statement in parse(file.read_text("utf-8"), origin=file.name).items():
            if name in queries:
                raise ValueError(f"{file.name}: statement {name!r} is already defined in another file")
            queries[name] = statement
    return queries


QUERIES = load_queries()
