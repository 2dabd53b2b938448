"""The operator's read side against real PostgreSQL: job pages in both orders and directions, filters and
time bounds, counts, object search by key prefix in byte order, traffic per minute, and the indexes each
page reads in the order it shows (no sort of every matching row)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from conveyor.api.console.jobs import Filters, Order, id_at, page_search
from conveyor.api.console.throughput import Throughput
from conveyor.db.connection import Connection
from conveyor.db.records import JobSearch, JobStatus
from conveyor.db.sql import QUERIES
from conveyor.pipeline.engine import Engine
from conveyor.pipeline.engine.dag import JobSpec, SourceObject


async def _jobs(engine: Engine, count: int) -> list[uuid.UUID]:
    """``count`` jobs, types a/b alternating, every third in bucket x, the rest in y; ids in creation order."""
    ids = []
    for n in range(count):
        source = SourceObject("x" if n % 3 == 0 else "y", f"k{n % 5}")
        ids.append(await engine.create(JobSpec(job_type="ab"[n % 2]), source=source))
    return ids


def _filters(**given: Any) -> Filters:
    values: dict[str, Any] = dict(status=None, job_type=None, bucket=None, key=None, since=None, until=None,
                                  order=Order.NEWEST) | given  # fmt: skip
    return Filters(**values)


async def _walk(engine: Engine, filters: Filters, size: int) -> list[list[uuid.UUID]]:
    """Every page, following 'next' from the first; each page as shown."""
    base, pages, after = filters.search(), [], None
    while True:
        rows = await engine.browse.jobs(page_search(JobSearch(**{**base.__dict__, "limit": size + 1}), after, None))
        pages.append([r.id for r in rows[:size]])
        if len(rows) <= size:
            return pages
        after = rows[size - 1].id


async def test_pages_follow_each_other_both_ways_in_either_order(engine: Engine) -> None:
    ids = await _jobs(engine, 23)
    for order, expected in ((Order.NEWEST, ids[::-1]), (Order.OLDEST, ids)):
        pages = await _walk(engine, _filters(order=order), size=5)
        assert [i for page in pages for i in page] == expected and len(pages) == 5
        # Back from the last page: each previous page is the one shown before it.
        base = _filters(order=order).search()
        for shown, previous in zip(pages[1:], pages[:-1], strict=True):
            rows = await engine.browse.jobs(page_search(JobSearch(**{**base.__dict__, "limit": 5}), None, shown[0]))
            assert [r.id for r in reversed(rows)] == previous


async def test_filters_time_bounds_and_counts(engine: Engine) -> None:
    ids = await _jobs(engine, 30)
    jobs = {j.id: j for j in await engine.list_jobs(_any(), limit=100)}
    in_x_of_type_a = [i for i in ids[::-1] if jobs[i].source_bucket == "x" and jobs[i].job_type == "a"]
    found = await engine.browse.jobs(_filters(bucket="x", job_type="a").search())
    assert [j.id for j in found] == in_x_of_type_a
    found = await engine.browse.jobs(_filters(bucket="y", key="k1").search())
    assert {j.id for j in found} == {i for i in ids if jobs[i].source_bucket == "y" and jobs[i].source_key == "k1"}
    (cancelled,) = [ids[7]]
    await engine.cancel(cancelled)
    assert [j.id for j in await engine.browse.jobs(_filters(status=JobStatus.CANCELLED).search())] == [cancelled]
    assert await engine.browse.count_jobs(_filters().search(), at_most=1000) == 30
    assert await engine.browse.count_jobs(_filters().search(), at_most=10) == 10, "counting stops at the cap"
    # Creation times become id bounds: since is inclusive, until exclusive, to the millisecond of the id.
    since, until = _id_time(ids[10]), _id_time(ids[20])
    window = await engine.browse.jobs(_filters(since=since, until=until).search())
    expected = [i for i in reversed(ids) if since <= _id_time(i) < until]
    assert [j.id for j in window] == expected and ids[10] in expected and ids[20] not in expected


def _any() -> Any:
    from conveyor.db.records import JobFilter

    return JobFilter()


def _id_time(job_id: uuid.UUID) -> datetime:
    return datetime.fromtimestamp((job_id.int >> 80) / 1000, UTC)


def test_a_time_becomes_the_least_id_of_its_millisecond() -> None:
    moment = datetime(2026, 12, 4, 10, 0, 0, 123456, tzinfo=UTC)
    assert id_at(moment).int >> 80 == int(moment.timestamp() * 1000)
    assert id_at(moment).int & ((1 << 80) - 1) == 0


KEYS = ["a", "a/1", "a/2", "a%_", "a\U0010ffff", "a\uffff", "ab", "b", "ä", "\u00e4/x", "A"]


async def _uploads(conn: Connection, bucket: str, keys: list[str], versions: int = 1) -> None:
    rows = [(bucket, key, f"v{v}") for key in keys for v in range(versions)]
    await conn.executemany("INSERT INTO uploads (bucket, object_key, version_id, origin) VALUES ($1, $2, $3, 'sweep')",
                           rows)  # fmt: skip


async def test_objects_by_key_prefix_in_byte_order_with_every_version(engine: Engine, conn: Connection) -> None:
    await _uploads(conn, "b1", KEYS, versions=2)
    await _uploads(conn, "b2", ["a/other-bucket"])
    found = await engine.browse.objects("b1", "a", limit=100)
    starting = sorted((k for k in KEYS if k.startswith("a")), key=lambda k: k.encode())
    assert [(o.object_key, o.version_id) for o in found] == [(k, v) for k in starting for v in ("v0", "v1")]
    assert [o.object_key for o in await engine.browse.objects("b1", "a%", limit=100)] == ["a%_", "a%_"]
    assert {o.object_key for o in await engine.browse.objects("b1", "\u00e4", limit=100)} == {"ä", "ä/x"}
    # Pages of three, resumed after (key, version): nothing skipped or repeated, even mid-key.
    seen: list[tuple[str, str]] = []
    after = None
    while page := await engine.browse.objects("b1", "", after=after, limit=3):
        seen += [(o.object_key, o.version_id) for o in page]
        after = seen[-1]
    assert seen == sorted(((k, v) for k in KEYS for v in ("v0", "v1")), key=lambda kv: (kv[0].encode(), kv[1]))


@pytest.mark.parametrize("prefix", ["", "a", "a/", "z\U0010ffff", "\U0010ffff", "\ud7ff", "x\U0010ffff\U0010ffff"])
def test_a_prefix_end_is_above_every_key_with_the_prefix_and_below_the_rest(prefix: str) -> None:
    from conveyor.db.browse import prefix_end

    end = prefix_end(prefix)
    if end is None:
        assert prefix.strip("\U0010ffff") == ""
        return
    assert prefix < end and not end.startswith(prefix)
    assert (prefix + "\U0010ffff" * 3) < end
    assert all(not 0xD800 <= ord(c) < 0xE000 for c in end)


async def test_traffic_per_minute_keeps_what_has_passed(engine: Engine, conn: Connection) -> None:
    now = datetime.now(UTC).replace(second=30, microsecond=0)
    earlier = now - timedelta(minutes=10)
    for at in (earlier, earlier, now):
        await conn.execute("INSERT INTO object_events (bucket, object_key, event_name, received_at) "
                           "VALUES ('b', $1, 's3:ObjectCreated:Put', $2)", str(uuid.uuid4()), at)  # fmt: skip
    for status, at in (("COMPLETED", earlier), ("FAILED", earlier), ("COMPLETED", now)):
        job_id = await engine.create(JobSpec(job_type="t"))
        await conn.execute("UPDATE job_rows SET status = $2, finished_at = $3 WHERE id = $1", job_id, status, at)
    throughput = Throughput(engine, clock=lambda: now)
    await throughput.run_once()  # what the API's side task does in the background
    minutes = await throughput.last_hour()
    assert len(minutes) == 60 and minutes[-1].minute == now.replace(second=0)
    by_minute = {m.minute: (m.uploads, m.finished, m.failed) for m in minutes}
    assert by_minute[earlier.replace(second=0)] == (2, 2, 1) and by_minute[now.replace(second=0)] == (1, 1, 0)
    assert sum(m.uploads for m in minutes) == 3
    # A minute that has passed is read once: a late row there is not read again; the current minute is.
    await conn.execute("INSERT INTO object_events (bucket, object_key, event_name, received_at) "
                       "VALUES ('b', 'late', 's3:ObjectCreated:Put', $1)", earlier)  # fmt: skip
    await conn.execute("INSERT INTO object_events (bucket, object_key, event_name, received_at) "
                       "VALUES ('b', 'now', 's3:ObjectCreated:Put', $1)", now)  # fmt: skip
    again = {m.minute: m.uploads for m in await throughput.last_hour()}
    assert again[earlier.replace(second=0)] == 2 and again[now.replace(second=0)] == 2


# -- plans: each page reads an index in the order it shows ----------------------------------------------


async def _plan(conn: Connection, name: str, *args: object) -> str:
    """The statement's plan with scans and sorts of whole tables discouraged: on a test's small tables the
    planner would rather sort; here it must find an index that gives the page's order, if one exists."""
    async with conn.transaction():
        for setting in ("enable_seqscan", "enable_bitmapscan", "enable_sort"):
            await conn.execute(f"SET LOCAL {setting} = off")
        await conn.execute(QUERIES["browse_custom_plans"])
        rows = await conn.fetch(f"EXPLAIN {QUERIES[name]}", *args)
    return "\n".join(r[0] for r in rows)


@pytest.mark.parametrize(
    ("filters", "index"),
    [
        ((None, None, None, None), "jobs_pkey"),
        (("FAILED", None, None, None), "job_rows_status_id"),
        ((None, "checksum", None, None), "jobs_type_id"),
        ((None, None, "uploads", None), "job_rows_bucket_id"),
    ],
)
async def test_job_pages_read_an_index_in_page_order(conn: Connection, filters: tuple[object, ...], index: str) -> None:
    for name in ("browse_jobs_descending", "browse_jobs_ascending"):
        plan = await _plan(conn, name, *filters, None, uuid.uuid4(), 51)
        assert index in plan and "Sort" not in plan, plan


async def test_object_search_reads_the_byte_order_index(conn: Connection) -> None:
    plan = await _plan(conn, "browse_objects", "uploads", "in/", "in0", "in/a", "v", 51)
    assert "uploads_key_order" in plan and "Sort" not in plan, plan
