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
_lock = threading.Lock()
_last_ms = 0
_counter = 0


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
    rand_b = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    return uuid.UUID(int=(ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | counter << 64 | 0b10 << 62 | rand_b)
