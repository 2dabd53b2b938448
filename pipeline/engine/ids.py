"""Job ids: UUIDv7 (RFC 9562), so sorting by id sorts by creation time and the primary key stays append-mostly.

Within one process ids are strictly increasing: ids made in the same millisecond carry a counter in the
12 bits after the version (RFC 9562, method 1), so "oldest first" holds even for jobs created together.
"""

from __future__ import annotations

import os
import threading
import time
import uuid

_COUNTER_MAX = 0xFFF
_RANDOM_MASK = (1 << 62) - 1
#: Random bits are read from the OS this many ids at a time: one ``os.urandom`` call per id was a
#: tenth of ingest's time per event (bench/RESULTS.md).
_RANDOM_BATCH = 512
_lock = threading.Lock()
_last_ms = 0
_counter = 0
_random: list[int] = []
# A forked child must never hand out its parent's unused random bits.
os.register_at_fork(after_in_child=_random.clear)


def uuid7() -> uuid.UUID:
    """A version-7 UUID, greater than every one this process made before."""
    global _last_ms, _counter
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms > _last_ms:
            _last_ms, _counter = ms, int.from_bytes(os.urandom(1), "big")  # a random start keeps ids unguessable
        else:
            _counter += 1
            if _counter > _COUNTER_MAX:  # 4096 ids in one millisecond: borrow the next one
                _last_ms, _counter = _last_ms + 1, 0
        ms, counter = _last_ms, _counter
        if not _random:
            block = os.urandom(8 * _RANDOM_BATCH)
            _random.extend(int.from_bytes(block[i : i + 8], "big") & _RANDOM_MASK for i in range(0, len(block), 8))
        rand_b = _random.pop()
    return uuid.UUID(int=(ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | counter << 64 | 0b10 << 62 | rand_b)
