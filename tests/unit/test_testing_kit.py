"""conveyor.testing: a handler author's unit tests need no services. The README's example runs as written."""

from __future__ import annotations

import dataclasses
import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from conveyor.pipeline.engine.errors import ObjectMissing
from conveyor.pipeline.handlers import builtin_handlers
from conveyor.pipeline.handlers.csv_profile import csv_profile
from conveyor.testing import MemoryJobState, MemoryObjectStore, job_context, job_row

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_handler_example() -> str:
    blocks: list[str] = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    (block,) = [b for b in blocks if "conveyor.testing" in b]
    return block


async def test_the_readme_handler_example_runs_as_written() -> None:
    namespace: dict[str, Any] = {}
    exec(compile(readme_handler_example(), "README.md", "exec"), namespace)
    await namespace["test_count_lines"]()
    registry = builtin_handlers()
    namespace["register"](registry)
    assert "myco.count_lines" in registry


async def test_a_builtin_handler_runs_against_the_memory_store_with_checkpoints() -> None:
    store, state = MemoryObjectStore(), MemoryJobState()
    store.add("uploads", "a.csv", b"id,name\n1,x\n2,\n3\n")
    result = await csv_profile(job_context("csv.profile", store=store, source=("uploads", "a.csv"), state=state))
    assert result["rows"] == 2 and result["nulls"] == {"id": 0, "name": 1} and result["invalid_rows"] == 1


async def test_the_memory_store_behaves_like_s3_for_missing_objects_and_unsupported_calls() -> None:
    store = MemoryObjectStore()
    ctx = job_context("checksum", store=store, source=("uploads", "gone.bin"))
    handler = builtin_handlers().get("checksum")
    assert handler is not None
    with pytest.raises(ObjectMissing, match="NoSuchKey"):
        await handler(ctx)
    with pytest.raises(NotImplementedError, match="does not support"):
        store.presigned_get_object("uploads", "x")


async def test_parents_results_and_checkpoints_round_trip() -> None:
    state = MemoryJobState(parents={"checksum": {"sha256": "ab"}})
    ctx = job_context("inspect", state=state)
    assert await ctx.parent_results() == {"checksum": {"sha256": "ab"}}
    assert await ctx.last_checkpoint() is None
    assert await ctx.checkpoint({"offset": 10})
    assert await ctx.last_checkpoint() == {"offset": 10}


async def test_a_job_claimed_without_a_checkpoint_reads_none_until_it_saves_one() -> None:
    class CountingState(MemoryJobState):
        lookups = 0

        async def last_checkpoint(self, job_id: uuid.UUID) -> Any:
            self.lookups += 1
            return await super().last_checkpoint(job_id)

    state = CountingState()
    first_attempt = dataclasses.replace(job_row("csv.profile"), has_checkpoint=False)
    ctx = job_context("csv.profile", state=state, job=first_attempt)
    assert await ctx.last_checkpoint() is None and state.lookups == 0, "no round trip for a first attempt"
    assert await ctx.checkpoint({"offset": 10})
    assert await ctx.last_checkpoint() == {"offset": 10} and state.lookups == 1
