"""The handler registry, user handler modules, and worker configuration checks (no services needed)."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from conveyor.db.errors import ConfigurationError
from conveyor.pipeline.engine.settings import EngineSettings, RedisSettings
from conveyor.pipeline.handlers import builtin_handlers
from conveyor.pipeline.worker.autoscale import Bounds, Load, Pressure, decide
from conveyor.pipeline.worker.metrics import WorkerMetrics
from conveyor.pipeline.worker.settings import WorkerSettings
from conveyor.pipeline.worker.worker import Worker
from tests.support import handlers as test_handlers

BUILTIN = {"checksum", "inspect", "csv.profile", "jsonl.validate", "archive.extract", "object.copy", "object.move"}


def test_builtins_are_registered() -> None:
    assert set(builtin_handlers()) == BUILTIN


def test_user_modules_add_handlers_through_register() -> None:
    registry = builtin_handlers()
    registry.load_module("tests.support.handlers")
    assert set(registry) - BUILTIN == {
        "test.noop", "test.sleep", "test.poison", "test.sleep_first", "test.flaky", "test.later", "test.permanent",
        "test.slow_lines",
    }  # fmt: skip
    assert registry.get("test.noop") is test_handlers.noop


def test_a_missing_module_or_register_function_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="cannot be imported"):
        builtin_handlers().load_module("no.such.module")
    with pytest.raises(ConfigurationError, match="no register"):
        builtin_handlers().load_module("tests.events")


def test_a_job_type_cannot_be_registered_twice() -> None:
    registry = builtin_handlers()
    with pytest.raises(ConfigurationError, match="already registered"):
        registry.register("checksum", test_handlers.noop)


def test_a_worker_refuses_job_types_it_has_no_handler_for() -> None:
    with pytest.raises(ConfigurationError, match="no handler for job type"):
        Worker(
            None, builtin_handlers(), None, None, WorkerSettings(job_types=["nope"]), EngineSettings(),  # type: ignore[arg-type]
            RedisSettings(), WorkerMetrics(CollectorRegistry()),
        )  # fmt: skip


def test_autoscale_bounds_are_validated() -> None:
    assert Bounds.parse("2:5") == Bounds(2, 5)
    for bad in ("5:2", "0:3", "x", "3"):
        with pytest.raises(ValueError, match="MIN:MAX"):
            Bounds.parse(bad)


def test_autoscale_decisions_need_patience_and_respect_bounds() -> None:
    bounds, pressure = Bounds(1, 2), Pressure()
    settings = WorkerSettings(concurrency=8, autoscale_backlog_per_process=10, autoscale_patience=2)
    assert decide(Load(0, 0), 0, pressure, bounds, settings) == 1, "below MIN: start one at once"
    assert decide(Load(50, 8), 1, pressure, bounds, settings) == 0, "one busy check is not enough"
    assert decide(Load(50, 8), 1, pressure, bounds, settings) == 1
    assert decide(Load(500, 16), 2, pressure, bounds, settings) == 0
    assert decide(Load(500, 16), 2, pressure, bounds, settings) == 0, "never past MAX"
    assert decide(Load(0, 0), 2, pressure, bounds, settings) == 0
    assert decide(Load(0, 0), 2, pressure, bounds, settings) == -1
    assert decide(Load(0, 0), 1, pressure, bounds, settings) == 0
    assert decide(Load(0, 0), 1, pressure, bounds, settings) == 0, "never below MIN"


def test_autoscale_keeps_a_process_its_running_jobs_need() -> None:
    """At a steady load nothing waits (jobs are claimed as they become ready), yet every process is busy."""
    bounds, pressure = Bounds(1, 3), Pressure()
    settings = WorkerSettings(concurrency=8, autoscale_patience=2)
    busy = [decide(Load(0, 9), 3, pressure, bounds, settings) for _ in range(4)]
    assert busy == [0, 0, 0, 0], "9 running would fill more than half of two processes' 16 slots"
    spare = [decide(Load(0, 8), 3, pressure, bounds, settings) for _ in range(2)]
    assert spare == [0, -1], "8 running fill half of them: one process is to spare"
    assert [decide(Load(0, 4), 2, pressure, bounds, settings) for _ in range(2)] == [0, -1]
    assert decide(Load(1, 0), 2, pressure, bounds, settings) == 0, "a ready job is not idle"
