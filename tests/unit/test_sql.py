"""The named-SQL loader, and the rule that Python refers to statements only by names that exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conveyor.db import sql

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [p for d in ("cli", "api", "ingest", "pipeline", "db", "bench") for p in (ROOT / d).rglob("*.py")]


def test_parse_splits_named_statements_and_keeps_their_comments() -> None:
    text = "-- preamble\n-- name: a\n-- doc of a\nSELECT 1;\n\n-- name: b_2\nSELECT $1;\n"
    assert sql.parse(text) == {"a": "-- doc of a\nSELECT 1;", "b_2": "SELECT $1;"}


@pytest.mark.parametrize(
    ("text", "problem"),
    [("-- name: a\nSELECT 1;\n-- name: a\nSELECT 2;", "defined twice"), ("-- name: a\n-- only a comment\n", "empty")],
)
def test_parse_rejects_duplicates_and_empty_statements(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        sql.parse(text)


def test_every_statement_is_used_and_every_use_exists() -> None:
    used = set()
    for source in [*SOURCES, *(ROOT / "tests").rglob("*.py")]:
        used |= set(re.findall(r'QUERIES\["([a-z0-9_]+)"\]', source.read_text()))
    assert used - set(sql.QUERIES) == set(), "Python names statements that no .sql file defines"
    assert set(sql.QUERIES) - used == set(), "statements defined in db/queries but never used"


def test_python_holds_no_sql() -> None:
    statement = re.compile(r"""["'](\s*)(SELECT|INSERT INTO|UPDATE|DELETE FROM|CREATE TABLE|ALTER TABLE)\s""")
    offenders = [str(p.relative_to(ROOT)) for p in SOURCES if statement.search(p.read_text())]
    assert offenders == []
