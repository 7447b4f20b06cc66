"""Recently counted statistics tables, so that many readers of one table cost one count.

A national statistics table counts every case (`GET /stats` groups the whole case-facts table),
which grows with the country's caseload; dashboards in every ministry ask for the same few
tables again and again. A table counted at read-model position P is served again:

* while the read models are still at P (nothing new can have changed it), or
* for up to `seconds` after it was counted (the `REFERRAL_STATS_CACHE_SECONDS` setting), unless
  the reader asks for a position past P (`min_position`, read-your-writes), which counts afresh.

Entries are keyed by everything the table depends on (which table, dimensions, months, scope,
threshold); they hold only published, already-suppressed aggregates. The most recent `size`
tables are kept per process.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Counted:
    """One table as counted: at which read-model position, and when (monotonic seconds)."""

    position: int
    counted_at: float
    table: Any


class TableCache:
    """Counted tables by key; thread-safe, least recently used dropped first."""

    def __init__(self, size: int = 256, clock: Callable[[], float] = time.monotonic) -> None:
        self.size = size
        self.clock = clock
        self._lock = threading.Lock()
        self._tables: OrderedDict[Hashable, Counted] = OrderedDict()

    def table(
        self,
        key: Hashable,
        *,
        position: int,
        seconds: float,
        count: Callable[[], T],
        at_least: int | None = None,
    ) -> tuple[T, int]:
        """The table for `key` and the position it was counted at: kept or counted now.

        `position` is where the read models are now (read before counting, so a table counted
        now is at least that new); `at_least` the position the reader asked for, if any.
        """
        now = self.clock()
        with self._lock:
            kept = self._tables.get(key)
            if kept is not None:
                self._tables.move_to_end(key)
        if kept is not None and self._usable(kept, now, position, seconds, at_least):
            table: T = kept.table
            return table, kept.position
        table = count()
        with self._lock:
            self._tables[key] = Counted(position, now, table)
            self._tables.move_to_end(key)
            while len(self._tables) > self.size:
                self._tables.popitem(last=False)
        return table, position

    @staticmethod
    def _usable(
        kept: Counted, now: float, position: int, seconds: float, at_least: int | None
    ) -> bool:
        if at_least is not None and kept.position < at_least:
            return False
        if kept.position >= position:
            return True  # the read models have not moved since
        return seconds > 0 and now - kept.counted_at <= seconds
