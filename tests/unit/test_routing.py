"""Routing rules: matching, DAG declarations, loop safety, and loud errors for a bad file."""

from __future__ import annotations

from typing import Any

import pytest

from conveyor.ingest.errors import BadEvent, RoutingError
from conveyor.ingest.events import UploadEvent
from conveyor.ingest.routing import load_rules, parse_rules, route

RULES = parse_rules(
    """
[[pipeline]]
name = "images"
  [pipeline.match]
  buckets = ["uploads"]
  prefix = "photos/"
  suffixes = [".JPG", ".png"]
  max_size = 1000
  content_types = ["image/*"]
  [[pipeline.jobs]]
  name = "a"
  type = "checksum"
  [[pipeline.jobs]]
  name = "b"
  type = "inspect"
  depends_on = ["a"]
  priority = 5

[[pipeline]]
name = "everything"
match = { glob = "*" }
  [[pipeline.jobs]]
  name = "only"
  type = "checksum"

[[pipeline]]
name = "outputs"
match = { prefix = "extracted/", include_pipeline_outputs = true, events = ["s3:ObjectCreated:Copy"] }
  [[pipeline.jobs]]
  name = "only"
  type = "inspect"
"""
)


def event(key: str, **kwargs: Any) -> UploadEvent:
    values: dict[str, Any] = {"bucket": "uploads", "key": key, "event_name": "s3:ObjectCreated:Put", "size": 10,
                                 "content_type": "image/png"}  # fmt: skip
    values.update(kwargs)
    return UploadEvent(**values)


def names(e: UploadEvent) -> list[str]:
    return [p.name for p in RULES.match(e)]


def test_an_event_can_start_several_pipelines() -> None:
    assert names(event("photos/cat.jpg")) == ["images", "everything"]


@pytest.mark.parametrize(
    "changes",
    [{"bucket": "other"}, {"key": "docs/cat.jpg"}, {"key": "photos/cat.gif"}, {"size": 5000},
     {"content_type": "text/plain"}, {"event_name": "s3:ObjectRemoved:Delete"}],
)  # fmt: skip
def test_each_condition_must_hold(changes: dict[str, object]) -> None:
    e = event(changes.pop("key", "photos/cat.jpg"), **changes)  # type: ignore[arg-type]
    assert "images" not in names(e)


def test_objects_written_by_conveyor_are_skipped_unless_a_rule_asks_for_them() -> None:
    meta = {"X-Amz-Meta-Conveyor-Job-Id": "j1", "X-Amz-Meta-Conveyor-Lineage-Depth": "1"}
    written = event("extracted/x.png", user_metadata=meta, event_name="s3:ObjectCreated:Copy")
    assert names(written) == ["outputs"]


def test_a_runaway_chain_is_dead_lettered_with_a_clear_reason() -> None:
    deep = event("extracted/x.png", user_metadata={"conveyor-lineage-depth": "4"})
    with pytest.raises(BadEvent) as error:
        route(deep, RULES, max_lineage_depth=3)
    assert error.value.reason == "lineage_depth_exceeded"
    assert route(deep, RULES, max_lineage_depth=4).lineage_depth == 4


def test_routed_specs_form_one_dag_scoped_by_event() -> None:
    routed = route(event("photos/cat.png"), RULES, max_lineage_depth=3).recorded_as(42)
    specs = {s.name: s for s in routed.specs()}
    assert set(specs) == {"42/images/a", "42/images/b", "42/everything/only"}
    assert list(specs["42/images/b"].depends_on) == ["42/images/a"]
    assert specs["42/images/b"].step == "b" and specs["42/images/b"].pipeline == "images"
    assert specs["42/images/b"].priority == 5
    assert specs["42/images/a"].source is not None and specs["42/images/a"].source.key == "photos/cat.png"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[[pipeline]]\nname = 'x'\n", "jobs"),
        ("[[pipeline]]\nname='x'\n[[pipeline.jobs]]\nname='a'\ntype='t'\ndepends_on=['zz']\n", "'zz'"),
        ("[[pipeline]]\nname='x'\n[[pipeline.jobs]]\nname='a'\ntype='t'\ndepends_on=['a']\n", "cycle"),
        ("[[pipeline]]\nname='x'\nmatch={ sufixes=['.csv'] }\n[[pipeline.jobs]]\nname='a'\ntype='t'\n", "sufixes"),
        ("[[pipeline]\n", "not valid TOML"),
        ("[[pipeline]]\nname='x'\n[[pipeline.jobs]]\nname='a'\ntype='t'\n" * 2, "unique"),
    ],
)
def test_bad_pipelines_files_are_refused_with_the_problem_named(text: str, fragment: str) -> None:
    with pytest.raises(RoutingError, match=fragment):
        parse_rules(text)


def test_the_shipped_default_is_valid() -> None:
    rules = load_rules(None)
    assert {p.name for p in rules.match(event("data/x.csv"))} == {"fingerprint", "csv"}


KEYED = parse_rules(
    """
[[pipeline]]
name = "tenants"
  [[pipeline.jobs]]
  name = "scan"
  type = "av.scan"
  concurrency_key = "{bucket}/{prefix1}"
  concurrency_limit = 4
  [[pipeline.jobs]]
  name = "ocr"
  type = "ocr"
  concurrency_key = "ocr-{metadata.plan}-{prefix2}"
  depends_on = ["scan"]
"""
)


def test_a_job_s_concurrency_key_is_made_from_the_upload() -> None:
    event = UploadEvent(bucket="uploads", key="acme/2026/report.pdf", event_name="s3:ObjectCreated:Put",
                        user_metadata={"X-Amz-Meta-Plan": "gold"})  # fmt: skip
    scan, ocr = route(event, KEYED, max_lineage_depth=3).recorded_as(7).specs()
    assert (scan.concurrency_key, scan.concurrency_limit) == ("uploads/acme", 4)
    assert (ocr.concurrency_key, ocr.concurrency_limit) == ("ocr-gold-acme/2026", None)
    top = UploadEvent(bucket="uploads", key="loose.pdf", event_name="s3:ObjectCreated:Put")
    scan, ocr = route(top, KEYED, max_lineage_depth=3).recorded_as(8).specs()
    assert (scan.concurrency_key, ocr.concurrency_key) == ("uploads/", "ocr--"), "no folder: empty parts"


@pytest.mark.parametrize(
    ("job", "message"),
    [
        ('concurrency_key = "{tenant}"', "unknown placeholder {tenant}"),
        ('concurrency_key = "{prefix0}"', "unknown placeholder {prefix0}"),
        ('concurrency_key = "{bucket"', "concurrency_key '{bucket'"),
        ("concurrency_limit = 3", "concurrency_limit needs a concurrency_key"),
        ('concurrency_key = "x"\n  concurrency_limit = 0', "concurrency_limit"),
    ],
)
def test_a_bad_key_template_or_limit_is_refused_naming_the_job(job: str, message: str) -> None:
    text = f'[[pipeline]]\nname = "p"\n  [[pipeline.jobs]]\n  name = "j"\n  type = "t"\n  {job}\n'
    with pytest.raises(RoutingError, match=r"pipeline\.0\.jobs\.0") as refused:
        parse_rules(text)
    assert message in str(refused.value)
