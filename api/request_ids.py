"""Request ids: random 128-bit values as 32 hex digits, drawn from the OS in batches.

Every request gets one (the X-Request-Id header, the log lines, the correlation id of what it
appends). `uuid.uuid4()` asks the OS for 16 random bytes each time and builds a UUID object
around them: a system call and some work on the event loop per request. Drawing 256 ids'
worth at once keeps them exactly as random and unpredictable, for one call per 256 requests.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

BATCH = 256
ID_BYTES = 16


def _batches() -> Iterator[str]:
    while True:
        pool = os.urandom(ID_BYTES * BATCH).hex()
        for start in range(0, len(pool), 2 * ID_BYTES):
            yield pool[start : start + 2 * ID_BYTES]


class RequestIds:
    """A source of request ids; use from one thread (the event loop's)."""

    def __init__(self) -> None:
        self._ids = _batches()

    def __call__(self) -> str:
        return next(self._ids)
