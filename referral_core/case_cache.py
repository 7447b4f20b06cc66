"""The last cases this process folded, kept so the next read only folds what is new.

Loading a case reads its snapshot and every event since, decrypts and folds them: most of an
append's time. The cache keeps a private copy of each recently used case, least recently used
first out. A read takes a copy and fast-forwards it with the events stored after it (one
indexed query), so it is never staler than the store, whichever process wrote. Nothing a caller
does to its copy reaches the cache: only `keep` puts a case in, as a copy.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from uuid import UUID

from referral_core.case import Case

DEFAULT_CASE_CACHE_SIZE = 4096


class CaseCache:
    """A thread-safe LRU of folded cases by id; size 0 keeps nothing."""

    def __init__(self, size: int = DEFAULT_CASE_CACHE_SIZE) -> None:
        self.size = max(0, size)
        self._cases: OrderedDict[UUID, Case] = OrderedDict()
        self._lock = threading.Lock()

    def copy_of(self, case_id: UUID) -> Case | None:
        """A private copy of the cached case, or None."""
        with self._lock:
            case = self._cases.get(case_id)
            if case is None:
                return None
            self._cases.move_to_end(case_id)
        return case.clone()

    def keep(self, case: Case) -> None:
        """Cache a copy of `case`, unless the cache already holds it at this version or later."""
        if self.size == 0 or case.pending_case_events():
            return  # a case with unsaved events is not what the store holds
        with self._lock:
            held = self._cases.get(case.id)
            if held is not None and held.version >= case.version:
                self._cases.move_to_end(case.id)
                return
        twin = case.clone()
        with self._lock:
            held = self._cases.get(case.id)
            if held is None or held.version < twin.version:
                self._cases[case.id] = twin
            self._cases.move_to_end(case.id)
            while len(self._cases) > self.size:
                self._cases.popitem(last=False)

    def resize(self, size: int) -> None:
        """Keep at most `size` cases from now on (0: none)."""
        with self._lock:
            self.size = max(0, size)
            while len(self._cases) > self.size:
                self._cases.popitem(last=False)

    def forget(self, case_id: UUID) -> None:
        with self._lock:
            self._cases.pop(case_id, None)

    def clear(self) -> None:
        with self._lock:
            self._cases.clear()

    def __len__(self) -> int:
        return len(self._cases)
