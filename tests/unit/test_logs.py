"""Log lines: a job's records carry its id, in text and in JSON."""

from __future__ import annotations

import json
import logging

import pytest

from conveyor.logs import JsonFormatter, LogFormat, LogSettings, TextFormatter, configure
from conveyor.settings import load


def record_of_a_job(message: str = "counted %d lines", *args: object) -> logging.LogRecord:
    record = logging.LogRecord("conveyor.job.csv.profile", logging.INFO, __file__, 1, message, args or (3,), None)
    record.job_id = "0190f0d2-0000-7000-8000-000000000001"
    return record


def test_text_lines_end_with_the_job_id() -> None:
    line = TextFormatter("%(name)s: %(message)s").format(record_of_a_job())
    assert line == "conveyor.job.csv.profile: counted 3 lines job_id=0190f0d2-0000-7000-8000-000000000001"


def test_json_lines_are_one_object_with_the_job_id_and_the_traceback() -> None:
    entry = json.loads(JsonFormatter().format(record_of_a_job()))
    assert entry["message"] == "counted 3 lines" and entry["job_id"].startswith("0190f0d2")
    assert entry["logger"] == "conveyor.job.csv.profile" and entry["level"] == "INFO"
    error = ValueError("boom")
    failed = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), exc_info=(ValueError, error, None))
    assert "ValueError: boom" in json.loads(JsonFormatter().format(failed))["traceback"]


def test_json_is_one_setting_away(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVEYOR_LOG__FORMAT", "json")
    settings = load()
    assert settings.log.format is LogFormat.JSON
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure(settings.log)
        assert isinstance(root.handlers[0].formatter, JsonFormatter)
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    assert LogSettings().format is LogFormat.TEXT
