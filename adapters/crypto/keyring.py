"""Case keys: created before a case's first encrypted field, unwrapped on use, destroyed to erase.

Each case has a random 32-byte AES-256-GCM data key. It is stored only wrapped: AES-256-GCM under
the current master key, a random 96-bit nonce, and associated data naming the case and the
master key, so a wrapped key cannot be moved to another case::

    wrapped = nonce (12 bytes) || AES-GCM(master, nonce, data key, AD)
    AD      = b"referral-case-key-v1\\x00" || case id (text) || b"\\x00" || master key id

A key is created and committed before anything is encrypted with it. Two processes creating the
key of one case at once both `INSERT … ON CONFLICT DO NOTHING` and then read the row back: both
use the one that won.

Unwrapped keys are cached in the process for at most `KEY_CACHE_SECONDS` (10 s). Destroying a
key evicts it from this process's cache at once; another process may still use its cached copy
for up to that long, which is the window in which a read elsewhere can still decrypt.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from adapters.crypto.keystore import KeyRow, KeyStore
from adapters.crypto.master import KEY_SIZE, MasterKeys

KEY_CACHE_SECONDS = 10.0
NONCE_SIZE = 12
_WRAP_DOMAIN = b"referral-case-key-v1\x00"
ROTATE_PAGE = 500


class CaseKeyError(ValueError):
    """A case key cannot be used: destroyed, or not unwrappable with the configured masters."""


class CaseKeyDestroyedError(CaseKeyError):
    """The case's key was destroyed (the case is erased): nothing more is encrypted for it."""


def _case_key(case_id: UUID | str) -> int:
    """The cache key of a case: its UUID's integer (hashing a UUID object is Python code)."""
    return case_id.int if isinstance(case_id, UUID) else UUID(case_id).int


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


class Keyring:
    """Per-case data keys in a `KeyStore`, wrapped by `MasterKeys`, with a short cache."""

    def __init__(
        self,
        master_keys: MasterKeys,
        *,
        cache_seconds: float = KEY_CACHE_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
        now: Callable[[], str] = _now_iso,
    ) -> None:
        if not 0 <= cache_seconds <= KEY_CACHE_SECONDS:
            raise ValueError(f"the key cache keeps keys at most {KEY_CACHE_SECONDS:g} s")
        self.master_keys = master_keys
        self.cache_seconds = cache_seconds
        self._monotonic = monotonic
        self._now = now
        self._store: KeyStore | None = None
        self._cache: dict[int, tuple[float, AESGCM | None]] = {}
        self._lock = threading.Lock()
        self._on_destroy: list[Callable[[str], None]] = []

    def on_destroy(self, forget: Callable[[str], None]) -> None:
        """Call `forget(case id)` whenever this keyring destroys a case's key."""
        self._on_destroy.append(forget)

    def bind(self, store: KeyStore) -> None:
        """Attach the store (the application builds its recorder after its mapper)."""
        self._store = store

    @property
    def store(self) -> KeyStore:
        if self._store is None:
            raise CaseKeyError("the keyring has no key store yet")
        return self._store

    # -- use ---------------------------------------------------------------------------------

    def for_writing(self, case_id: UUID | str) -> AESGCM | None:
        """The case's key, created (and committed) first if it has none; None once destroyed."""
        key = _case_key(case_id)
        cached = self._cached(key)
        if cached is not None:
            return cached[1]
        case = str(UUID(int=key))
        row = self.store.get(case)
        if row is None:
            data_key = secrets.token_bytes(KEY_SIZE)
            master_id = self.master_keys.current_id
            wrapped = self._wrap(case, data_key, master_id)
            row = self.store.insert_if_absent(case, wrapped, master_id, self._now())
        return self._remember(key, row)

    def for_reading(self, case_id: UUID | str) -> tuple[bool, AESGCM | None]:
        """(exists, key): (False, None) without a key; (True, None) once destroyed."""
        key = _case_key(case_id)
        cached = self._cached(key)
        if cached is not None:
            return True, cached[1]
        row = self.store.get(str(UUID(int=key)))
        if row is None:
            return False, None
        return True, self._remember(key, row)

    def preload(self, case_ids: Iterable[UUID | str]) -> None:
        """Read the keys of these cases in one go (a reader about to open them): those not
        cached, and those whose time in the cache is more than half over, so that none runs
        out while the reader is still at work and is read again one at a time."""
        margin = self.cache_seconds / 2
        missing = {
            str(UUID(int=k)) for k in map(_case_key, case_ids) if self._cached(k, margin) is None
        }
        if not missing:
            return
        for row in self.store.get_many(sorted(missing)):
            self._remember(_case_key(row.case_id), row)

    def is_destroyed(self, case_id: UUID | str) -> bool:
        exists, key = self.for_reading(case_id)
        return exists and key is None

    # -- erasure and rotation ----------------------------------------------------------------

    def destroy(self, case_id: UUID | str) -> None:
        """Overwrite the case's wrapped key; the case can never have a key again."""
        key = _case_key(case_id)
        case = str(UUID(int=key))
        self.store.destroy(case, self._now())
        with self._lock:
            self._cache[key] = (self._monotonic() + self.cache_seconds, None)
        for forget in self._on_destroy:
            forget(case)

    def rotate(self) -> int:
        """Rewrap every case key under the current master key; returns how many were rewrapped.

        Events are untouched: only the wrapped keys change. Afterwards the other master keys
        are no longer needed (keys wrapped by them in old backups stay unreadable without them).
        """
        current = self.master_keys.current_id
        rewrapped = 0
        after = ""
        while True:
            rows = self.store.wrapped_by_others(current, after, ROTATE_PAGE)
            if not rows:
                return rewrapped
            for row in rows:
                key = self._unwrap(row)
                wrapped = self._wrap(row.case_id, key, current)
                assert row.master_key_id is not None  # noqa: S101 -- selected as wrapped
                if self.store.rewrap(row.case_id, row.master_key_id, wrapped, current):
                    rewrapped += 1
                after = row.case_id

    # -- internals ---------------------------------------------------------------------------

    def _cached(self, key: int, margin: float = 0.0) -> tuple[float, AESGCM | None] | None:
        """The cached entry, if it stays valid `margin` seconds more."""
        entry = self._cache.get(key)  # a dict read is atomic: no lock on the hot path
        if entry is None:
            return None
        if entry[0] < self._monotonic() + margin:
            with self._lock:
                self._cache.pop(key, None)
            return None
        return entry

    def _remember(self, key: int, row: KeyRow) -> AESGCM | None:
        aead = None if row.destroyed or row.wrapped is None else AESGCM(self._unwrap(row))
        if self.cache_seconds > 0:
            with self._lock:
                self._cache[key] = (self._monotonic() + self.cache_seconds, aead)
        return aead

    def _wrap(self, case: str, key: bytes, master_id: str) -> bytes:
        nonce = secrets.token_bytes(NONCE_SIZE)
        master = AESGCM(self.master_keys.keys[master_id])
        return nonce + master.encrypt(nonce, key, _wrap_ad(case, master_id))

    def _unwrap(self, row: KeyRow) -> bytes:
        master_id = row.master_key_id or ""
        master = self.master_keys.keys.get(master_id)
        if master is None or row.wrapped is None:
            raise CaseKeyError(
                f"a case key is wrapped by master key {master_id!r}, not configured"
            )
        nonce, sealed = row.wrapped[:NONCE_SIZE], row.wrapped[NONCE_SIZE:]
        try:
            return AESGCM(master).decrypt(nonce, sealed, _wrap_ad(row.case_id, master_id))
        except InvalidTag:
            raise CaseKeyError(
                f"a case key does not unwrap with master key {master_id!r}"
            ) from None


def _wrap_ad(case: str, master_id: str) -> bytes:
    return _WRAP_DOMAIN + case.encode("ascii") + b"\x00" + master_id.encode("ascii")
