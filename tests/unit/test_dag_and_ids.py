"""DAG validation (pure) and job ids."""

from __future__ import annotations

import os
import uuid

import pytest

from conveyor.pipeline.engine.dag import JobSpec, topological_order
from conveyor.pipeline.engine.errors import DependencyCycle, InvalidDag
from conveyor.pipeline.engine.ids import uuid7, uuid7_many


def test_topological_order_puts_parents_first() -> None:
    specs = [
        JobSpec(name="c", job_type="t", depends_on=["a", "b"]),
        JobSpec(name="b", job_type="t", depends_on=["a"]),
        JobSpec(name="a", job_type="t"),
    ]
    order = [specs[i].name for i in topological_order(specs)]
    assert order == ["a", "b", "c"]


def test_existing_job_ids_are_not_checked_here() -> None:
    assert topological_order([JobSpec(job_type="t", depends_on=[uuid.uuid4()])]) == [0]


def test_a_long_cycle_is_found() -> None:
    specs = [JobSpec(name=str(i), job_type="t", depends_on=[str((i + 1) % 50)]) for i in range(50)]
    with pytest.raises(DependencyCycle):
        topological_order(specs)


@pytest.mark.parametrize(
    "kwargs", [{"job_type": ""}, {"job_type": "t", "max_retries": -1}, {"job_type": "t", "timeout_ms": 0}]
)
def test_invalid_specs(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidDag):
        JobSpec(**kwargs)  # type: ignore[arg-type]


def test_uuid7_is_version_7_and_strictly_increasing() -> None:
    ids = [uuid7() for _ in range(20_000)]
    assert all(i.version == 7 and i.variant == uuid.RFC_4122 for i in ids)
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


def test_a_batch_past_one_milliseconds_counter_borrows_the_next_milliseconds() -> None:
    """10,000 ids in one call (one clock reading) fill the 4,096 counter values of a millisecond and carry
    on in the next ones: increasing, distinct, and after the ids made before and before those made after."""
    before, batch, after = uuid7(), uuid7_many(10_000), uuid7()
    ids = [before, *batch, after]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert all(i.version == 7 and i.variant == uuid.RFC_4122 for i in batch)
    milliseconds = sorted({i.int >> 80 for i in batch})
    assert len(milliseconds) >= 3 and milliseconds == list(range(milliseconds[0], milliseconds[-1] + 1))
    counters = [(i.int >> 64) & 0xFFF for i in batch if i.int >> 80 == milliseconds[1]]
    assert counters == list(range(4096))  # a borrowed millisecond uses every counter value from 0


@pytest.mark.parametrize(
    "kwargs",
    [{"job_type": "t", "concurrency_limit": 2}, {"job_type": "t", "concurrency_key": "k", "concurrency_limit": 0},
     {"job_type": "t", "concurrency_key": "a\nb"}, {"job_type": "t", "concurrency_key": "k" * 201}],
)  # fmt: skip
def test_invalid_concurrency(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidDag):
        JobSpec(**kwargs)  # type: ignore[arg-type]


def test_a_forked_child_never_reuses_its_parents_random_bits() -> None:
    uuid7()  # the parent now holds a batch of random bits
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: one id, then out without running anything of pytest's
        os.write(write, uuid7().bytes)
        os._exit(0)
    os.waitpid(pid, 0)
    child, parent = uuid.UUID(bytes=os.read(read, 16)), uuid7()
    random_bits = (1 << 62) - 1
    assert child.int & random_bits != parent.int & random_bits
