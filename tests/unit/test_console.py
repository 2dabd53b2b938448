"""The console's pure parts: session cookies and CSRF tokens, sign-in targets, DAG layout, charts, formats."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr

from conveyor.api.console.auth import safe_target
from conveyor.api.console.charts import bars, sparkline
from conveyor.api.console.dag import NODE_WIDTH, draw
from conveyor.api.console.objects import Output, object_path, outputs
from conveyor.api.console.rendering import duration, size
from conveyor.api.console.session import Role, Sessions
from conveyor.api.settings import ApiSettings
from conveyor.db.records import JobRow, JobStatus
from conveyor.pipeline.engine.ids import uuid7


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def _sessions(clock: Clock, **tokens: list[str]) -> Sessions:
    settings = ApiSettings(tokens=[SecretStr(t) for t in tokens.get("rw", ["rw-token"])],
                           read_only_tokens=[SecretStr(t) for t in tokens.get("ro", ["ro-token"])])  # fmt: skip
    return Sessions(settings, clock=clock)


def test_a_token_opens_a_session_of_its_role_with_a_csrf_token_of_its_own() -> None:
    clock = Clock()
    sessions = _sessions(clock)
    operator, viewer = sessions.read(sessions.open("rw-token")), sessions.read(sessions.open("ro-token"))
    assert operator is not None and operator.role is Role.OPERATOR and operator.may_act
    assert viewer is not None and viewer.role is Role.VIEWER and not viewer.may_act
    assert operator.csrf != viewer.csrf and len(operator.csrf) >= 40
    assert sessions.open("unknown") is None and sessions.open("") is None
    second = sessions.read(sessions.open("rw-token"))
    assert second is not None and second.csrf != operator.csrf, "each sign-in has its own CSRF token"


def test_forged_expired_and_orphaned_cookies_are_no_session() -> None:
    clock = Clock()
    sessions = _sessions(clock)
    cookie = sessions.open("ro-token")
    assert cookie is not None
    role, issued, nonce, mac = cookie.split(".")
    assert sessions.read(f"operator.{issued}.{nonce}.{mac}") is None, "a viewer cannot promote itself"
    assert sessions.read(f"{role}.{int(issued) + 1}.{nonce}.{mac}") is None, "nor extend its cookie"
    assert sessions.read(f"{role}.{issued}.{nonce}.{mac[:-1]}{'B' if mac.endswith('A') else 'A'}") is None
    for garbage in (None, "", "a.b.c", "viewer.x.y.z", "admin.1.2.3", cookie + ".extra"):
        assert sessions.read(garbage) is None
    clock.now += 12 * 3600 - 1
    assert sessions.read(cookie) is not None
    clock.now += 2
    assert sessions.read(cookie) is None, "a session lasts console_session_hours"
    clock.now -= 10
    assert _sessions(clock, ro=["another"]).read(cookie) is None, "removing a token ends its sessions"


def test_the_csrf_check_wants_the_sessions_own_token() -> None:
    sessions = _sessions(Clock())
    session = sessions.read(sessions.open("rw-token"))
    assert session is not None
    assert Sessions.csrf_matches(session, session.csrf)
    for wrong in (None, "", session.csrf[:-1], session.csrf + "x"):
        assert not Sessions.csrf_matches(session, wrong)


@pytest.mark.parametrize(
    ("target", "expected"),
    [(None, "/ui"), ("/ui/jobs?status=FAILED", "/ui/jobs?status=FAILED"), ("https://evil.example/ui", "/ui"),
     ("//evil.example/ui", "/ui"), ("/ui/login", "/ui"), ("/api/jobs", "/ui"), ("/ui\\@evil", "/ui")],
)  # fmt: skip
def test_after_signing_in_only_a_console_page_of_this_site(target: str | None, expected: str) -> None:
    assert safe_target(target) == expected


NOW = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)


def _job(step: str, parents: Sequence[JobRow] = (), **extra: object) -> JobRow:
    values: dict[str, object] = dict(
        id=uuid7(), job_type=step, payload={}, status=JobStatus.COMPLETED, priority=0, attempts=1,
        attempt_floor=0, max_retries=3, timeout_ms=1000, run_at=NOW, lease_expires_at=None, worker_id=None,
        cancel_requested=False, pending_parents=0, result=None, errors=[], idempotency_key=None,
        pipeline="p", step=step, object_event_id=1, source_bucket="b", source_key="k", source_version=None,
        created_at=NOW, started_at=NOW, finished_at=NOW + timedelta(seconds=1), depends_on=[p.id for p in parents],
    )  # fmt: skip
    return JobRow(**(values | extra))  # type: ignore[arg-type]


def test_each_pipeline_run_is_drawn_in_columns_by_depth() -> None:
    a = _job("a")
    b, c = _job("b", [a]), _job("c", [a])
    d = _job("d", [b, c])
    other = _job("solo", pipeline="other")
    again = replace(a, id=uuid7(), object_event_id=2)
    first, second, third = draw([d, other, c, again, b, a])
    assert (first.title, second.title, third.title) == ("p · event 1", "other · event 1", "p · event 2")
    column = {n.job.step: n.x // NODE_WIDTH for n in first.nodes}
    assert column["a"] < column["b"] == column["c"] < column["d"]
    assert len(first.edges) == 4 and all(e.x1 < e.x2 for e in first.edges)
    assert first.settled and len(third.nodes) == 1
    assert not draw([replace(a, status=JobStatus.RUNNING)])[0].settled


def test_outputs_are_read_from_the_results_of_copies_and_extractions() -> None:
    copy = _job("copy", result={"target": "s3://archive/in/a b.csv", "moved": False})
    extract = _job("extract", result={"output": "s3://out/x.zip/", "written": ["x.zip/one.txt", "x.zip/two/ü.txt"]})
    found = list(outputs([copy, extract, _job("checksum", result={"sha256": "00"})]))
    assert [(o.what, o.address) for o in found] == [
        ("copy", "s3://archive/in/a b.csv"), ("output prefix", "s3://out/x.zip/"),
        ("extracted", "s3://out/x.zip/one.txt"), ("extracted", "s3://out/x.zip/two/ü.txt"),
    ]  # fmt: skip
    assert found[0].link == "/ui/objects/archive/in/a%20b.csv" and found[1].link is None
    assert object_path("b", "a+b 100%/#?.csv") == "/ui/objects/b/a%2Bb%20100%25/%23%3F.csv"
    assert isinstance(found[2], Output)


def test_charts_and_formats() -> None:
    line = sparkline([0, 5, 10])
    assert line.peak == 10 and line.line.split()[-1].endswith(",2.0") and line.line.split()[0].endswith(",58.0")
    assert sparkline([0, 0]).peak == 0 and sparkline([]).line == ""
    assert [(b.label, b.width) for b in bars({"a": 5, "b": 10, "c": 0})] == [("a", 50.0), ("b", 100.0), ("c", 0.0)]
    assert [duration(s) for s in (0.25, 12.34, 200, 7500, 90000)] == ["250 ms", "12.3 s", "3 min 20 s", "2 h 5 min",
                                                                      "1 d 1 h"]  # fmt: skip
    assert [size(n) for n in (None, 5, 2048, 5 << 30)] == ["-", "5 B", "2.0 KiB", "5.0 GiB"]
