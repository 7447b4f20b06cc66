"""A short cache of opened payloads: loading a case opens the same events again and again.

Appending to a case loads it, which replays the events since its last snapshot (up to 49) and
would open each sealed value every time. Opened payloads are kept for at most
`KEY_CACHE_SECONDS` (10 s), the bound of the key cache, so an erasure reaches them as it
reaches cached keys: at once in this process (the keyring tells this cache to forget the case,
and a destroyed key opens nothing), within that bound in another. An entry is found by event
(stream, version) and answers only when the event type matches and every sealed field holds
the very same ciphertext as when it was opened; anything else goes to the decryption.
Corrections (sealed values nested in `corrected_values`) are not kept.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple
from uuid import UUID

from adapters.crypto.fields import CORRECTED_VALUES, is_sealed
from adapters.crypto.keyring import KEY_CACHE_SECONDS

MAX_ENTRIES = 20_000


class _Entry(NamedTuple):
    expires: float
    event_type: str
    case_id: str
    sealed: tuple[Any, ...]
    opened: dict[str, Any]


def _key(stream: UUID | str, version: int) -> tuple[object, int]:
    return (stream.int if isinstance(stream, UUID) else stream, version)


class OpenedPayloads:
    """Opened sealed fields of recently read events, for at most `seconds`."""

    def __init__(
        self,
        seconds: float = KEY_CACHE_SECONDS,
        *,
        max_entries: int = MAX_ENTRIES,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 <= seconds <= KEY_CACHE_SECONDS:
            raise ValueError(f"opened values are kept at most {KEY_CACHE_SECONDS:g} s")
        self.seconds = seconds
        self.max_entries = max_entries
        self._monotonic = monotonic
        self._entries: dict[tuple[object, int], _Entry] = {}
        self._lock = threading.Lock()

    def get(
        self,
        stream: UUID | str,
        version: int,
        event_type: str,
        payload: Mapping[str, Any],
        names: tuple[str, ...],
    ) -> dict[str, Any] | None:
        """The payload with its sealed fields opened, if this very payload was just opened."""
        entry = self._entries.get(_key(stream, version))
        if (
            entry is None
            or entry.expires < self._monotonic()
            or entry.event_type != event_type
            or tuple([payload.get(name) for name in names]) != entry.sealed
        ):
            return None
        out = dict(payload)
        for name, value in entry.opened.items():
            out[name] = value if isinstance(value, str) else copy.deepcopy(value)
        return out

    def put(
        self,
        stream: UUID | str,
        version: int,
        event_type: str,
        payload: Mapping[str, Any],
        *,
        opened: Mapping[str, Any],
        names: tuple[str, ...],
    ) -> None:
        """Keep what `fields.open_payload` opened of `payload` (top-level fields only)."""
        if self.seconds <= 0 or CORRECTED_VALUES in names:
            return
        sealed = tuple([payload.get(name) for name in names])
        values = {
            name: copy.deepcopy(opened[name]) for name in names if is_sealed(payload.get(name))
        }
        now = self._monotonic()
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries = {k: e for k, e in self._entries.items() if e.expires >= now}
                if len(self._entries) >= self.max_entries:
                    self._entries.clear()
            self._entries[_key(stream, version)] = _Entry(
                now + self.seconds, event_type, str(stream), sealed, values
            )

    def forget(self, case_id: str) -> None:
        """Drop every opened payload of one case (its key was destroyed)."""
        with self._lock:
            self._entries = {k: e for k, e in self._entries.items() if e.case_id != case_id}
