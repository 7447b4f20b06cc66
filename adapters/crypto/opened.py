"""A short cache of opened sealed values: loading a case opens the same events again and again.

Appending to a case loads it, which replays the events since its last snapshot (up to 49) and
would open each sealed value every time. Opened values are kept for at most
`KEY_CACHE_SECONDS` (10 s), the bound of the key cache, so an erasure reaches them as it
reaches cached keys: at once in this process (the keyring tells this cache to forget the case,
and a destroyed key opens nothing), within that bound in another. Entries are keyed by the
ciphertext together with its whole place (case, stream, version, event type, field), so a
ciphertext moved elsewhere is never answered from here: it goes to the decryption, which
refuses it.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from adapters.crypto.fields import Place, open_sealed
from adapters.crypto.keyring import KEY_CACHE_SECONDS

MAX_ENTRIES = 20_000

Key = tuple[str, object, object, int, str, str]


class OpenedValues:
    """Opened sealed values by ciphertext and place, for at most `seconds`."""

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
        self._entries: dict[Key, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def open(self, aead: AESGCM, value: Mapping[str, Any], place: Place, path: str) -> Any:
        """`fields.open_sealed`, answered from the cache when the same value was just opened."""
        key = (str(value.get("c")), place.case_id, place.stream_id, place.version,
               place.event_type, path)  # fmt: skip
        now = self._monotonic()
        hit = self._entries.get(key)
        if hit is not None and hit[0] >= now:
            return hit[1] if isinstance(hit[1], str) else copy.deepcopy(hit[1])
        opened = open_sealed(aead, value, place, path)
        if self.seconds > 0:
            with self._lock:
                if len(self._entries) >= self.max_entries:
                    self._entries = {k: v for k, v in self._entries.items() if v[0] >= now}
                    if len(self._entries) >= self.max_entries:
                        self._entries.clear()
                self._entries[key] = (now + self.seconds, opened)
        return opened if isinstance(opened, str) else copy.deepcopy(opened)

    def forget(self, case_id: str) -> None:
        """Drop every opened value of one case (its key was destroyed)."""
        with self._lock:
            self._entries = {k: v for k, v in self._entries.items() if str(k[1]) != case_id}
