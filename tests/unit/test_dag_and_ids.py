"""DAG validation (pure) and job ids."""

from __future__ import annotations

import os
import uuid

import pytest

from conveyor.pipeline.engine.dag import JobSpec, topological_order
from conveyor.pipeline.engine.errors import DependencyCycle, InvalidDag
from conveyor.pipeline.engine.ids import uuid7


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
