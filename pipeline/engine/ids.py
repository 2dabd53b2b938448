"""Job ids: UUIDv7 (RFC 9562), so sorting by id sorts by creation time and the primary key stays append-mostly.

Within one process ids are strictly increasing: ids made in the same millisecond carry a counter in the
12 bits after the version (RFC 9562, method 1), so "oldest first" holds even for jobs created together.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from typing import Any

_COUNTER_MAX = 0xFFF
_MS_MASK = (1 << 48) - 1
_VERSION_AND_VARIANT = 0x7 << 76 | 0b10 << 62
_RANDOM_MASK = (1 << 62) - 1
#: Random bits are read from the OS this many ids at a time: one ``os.urandom`` call per id was a
#: tenth of ingest's time per event (bench/RESULTS.md).
_RANDOM_BATCH = 512
_lock = threading.Lock()
_last_ms = 0
_counter = 0
_random: list[int] = []
_UNKNOWN_SAFETY = uuid.SafeUUID.unknown  # an enum member read once: each read through the class costs
# A forked child must never hand out its parent's unused random bits.
os.register_at_fork(after_in_child=_random.clear)


def uuid7() -> uuid.UUID:
    """A version-7 UUID, greater than every one this process made before."""
    return uuid7_many(1)[0]


def uuid7_many(count: int) -> list[uuid.UUID]:
    """``count`` version-7 UUIDs in increasing order, each greater than every one this process made before.

    One lock, one clock reading and one draw of random bits for the lot: bulk enqueue makes thousands
    at once, and one :func:`uuid7` call each was a fifth of its time (bench/RESULTS.md).
    """
    global _last_ms, _counter
    values: list[int] = []
    with _lock:
        now_ms = time.time_ns() // 1_000_000
        while len(_random) < count + 1:  # one more for a new millisecond's counter start
            _refill()
        while len(values) < count:
            if now_ms > _last_ms:
                # A random start keeps ids unguessable; from the drawn bits, since an os.urandom call each
                # millisecond was a system call per job on the HTTP API's create.
                _last_ms, _counter = now_ms, _random.pop() & 0xFF
            elif _counter >= _COUNTER_MAX:  # 4096 ids in one millisecond: borrow the next one
                _last_ms, _counter = _last_ms + 1, 0
            else:
                _counter += 1
            # The rest of this millisecond's counter values in one go: a branch per id was a sixth of the cost.
            take = min(count - len(values), _COUNTER_MAX - _counter + 1)
            stamp = (_last_ms & _MS_MASK) << 80 | _VERSION_AND_VARIANT
            values += [stamp | c << 64 | _random.pop() & _RANDOM_MASK for c in range(_counter, _counter + take)]
            _counter += take - 1
    return [_uuid(value) for value in values]


def _refill() -> None:
    """Draw ``_RANDOM_BATCH`` 64-bit words (in the machine's byte order: any order of random bytes is random;
    their top two bits are masked off where each is used). Read as one cast of the buffer, not a slice and
    an ``int.from_bytes`` per word, which was 0.26 of the 0.60 us each id of a bulk enqueue took."""
    _random.extend(memoryview(os.urandom(8 * _RANDOM_BATCH)).cast("Q"))


def _uuid(value: int, new: Any = object.__new__, assign: Any = object.__setattr__) -> uuid.UUID:
    """``uuid.UUID(int=value)`` without its checks (``value`` is a valid UUID by construction): half the cost."""
    made: uuid.UUID = new(uuid.UUID)
    assign(made, "int", value)
    assign(made, "is_safe", _UNKNOWN_SAFETY)
    return made
