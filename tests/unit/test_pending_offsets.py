"""PendingOffsets: which offsets wait, and when they are due."""

from __future__ import annotations

from aiokafka import TopicPartition

from conveyor.ingest.offsets import PendingOffsets

P0, P1 = TopicPartition("events", 0), TopicPartition("events", 1)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_first_offsets_are_due_at_once_and_later_ones_once_the_interval_is_up() -> None:
    clock = Clock()
    pending = PendingOffsets(1.0, clock)
    assert not pending and not pending.due()
    pending.add({P0: 5})
    assert pending.due()
    assert pending.take() == {P0: 5}
    pending.add({P0: 9, P1: 3})
    clock.now += 0.5
    assert pending and not pending.due()
    clock.now += 0.5
    assert pending.due()
    assert pending.take() == {P0: 9, P1: 3}
    assert not pending and not pending.due()


def test_each_partition_keeps_its_furthest_offset() -> None:
    pending = PendingOffsets(0.0, Clock())
    pending.add({P0: 9})
    pending.add({P0: 7, P1: 2})
    assert pending.take() == {P0: 9, P1: 2}


def test_an_interval_of_zero_makes_every_batch_due() -> None:
    pending = PendingOffsets(0.0, Clock())
    for offset in (1, 2, 3):
        pending.add({P0: offset})
        assert pending.due()
        assert pending.take() == {P0: offset}
