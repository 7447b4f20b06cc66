"""Which payload fields are sealed under the case key, and how one field is sealed and opened.

Sealed: every field `policy.identifying_fields(event_type)` names; in an `EntryCorrected`, each
value of `corrected_values` whose key is an identifying field of any event type (the other
corrected values stay readable, so a corrected age still counts in statistics after erasure);
and the `purpose` of an access record. None stays None: absence says nothing.

A sealed value replaces the plain one inline in the stored JSON::

    {"_enc": "v1", "n": base64(nonce, 12 bytes), "c": base64(AES-256-GCM ciphertext || tag)}

The plaintext is the value's JSON encoding (payloads hold JSON values only). The associated
data binds the ciphertext to its case, stream, version, event type and field, so it cannot be
moved to another place::

    b"referral-field-v1\\x00" || for each of case id, stream id, event type, field path:
    len u16 || UTF-8 text, and the version as u64 after the stream id
"""

from __future__ import annotations

import binascii
import json
import os
import struct
import threading
from collections.abc import Callable, Iterable, Mapping
from functools import cache
from typing import Any, TypeGuard
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from referral_core.case import FOLD_READS_SENSITIVE
from referral_core.case_events import CATALOG
from referral_core.policy import identifying_fields

SEALED_MARK = "_enc"
SEALED_VERSION = "v1"
CORRECTED_VALUES = "corrected_values"
NONCE_SIZE = 12
_AD_DOMAIN = b"referral-field-v1\x00"


class SealedFieldError(ValueError):
    """A sealed field does not open: its ciphertext or its place was changed."""


@cache
def any_identifying_name() -> frozenset[str]:
    """Every field name that is identifying in some event type."""
    names: set[str] = set()
    for event_type in CATALOG:
        names |= identifying_fields(event_type)
    return frozenset(names)


@cache
def sealed_field_names(event_type: str) -> frozenset[str]:
    return identifying_fields(event_type) if event_type in CATALOG else frozenset()


@cache
def openable_names(event_type: str) -> tuple[str, ...]:
    """The payload fields of an event type that may hold sealed values."""
    names = sorted(sealed_field_names(event_type))
    if event_type == "EntryCorrected":
        names.append(CORRECTED_VALUES)
    return tuple(names)


@cache
def fold_names(event_type: str) -> tuple[str, ...]:
    """The sealed fields the case's fold reads: those `case.FOLD_READS_SENSITIVE` names, and
    corrections (their values land in effective payloads as they are).

    The fold sees every other identifying value only through `case.redact`, which replaces it
    by `REDACTED` whenever it is not None, so a sealed value it never opens folds the same."""
    return tuple(
        name
        for name in openable_names(event_type)
        if name in FOLD_READS_SENSITIVE or name == CORRECTED_VALUES
    )


class Place:
    """Where a sealed value lives: its associated data, less the field path."""

    __slots__ = ("_prefix", "case_id", "event_type", "stream_id", "version", "within")

    def __init__(
        self,
        case_id: UUID | str,
        stream_id: UUID | str,
        version: int,
        event_type: str,
        within: str = "",
    ) -> None:
        self.case_id = case_id
        self.stream_id = stream_id
        self.version = version
        self.event_type = event_type
        self.within = within
        self._prefix: bytes | None = None

    def ad(self, path: str) -> bytes:
        if self._prefix is None:
            self._prefix = b"".join(
                (
                    _AD_DOMAIN,
                    _text(str(self.case_id)),
                    _text(str(self.stream_id)),
                    struct.pack(">Q", self.version),
                    _text(self.event_type),
                )
            )
        return self._prefix + _text(path)

    def path(self, name: str) -> str:
        return f"{self.within}.{name}" if self.within else name

    def nested(self, name: str) -> Place:
        return Place(self.case_id, self.stream_id, self.version, self.event_type, self.path(name))


Opener = Callable[[AESGCM, Mapping[str, Any], Place, str], Any]


def _text(value: str) -> bytes:
    encoded = value.encode("utf-8")
    return struct.pack(">H", len(encoded)) + encoded


def is_sealed(value: Any) -> TypeGuard[dict[str, Any]]:
    return isinstance(value, dict) and value.get(SEALED_MARK) == SEALED_VERSION


class _Nonces:
    """Random 96-bit nonces, drawn from the OS a few kilobytes at a time (one system call
    per 341 nonces instead of one each)."""

    def __init__(self, batch: int = 341) -> None:
        self._size = batch * NONCE_SIZE
        self._pool = b""
        self._at = 0
        self._lock = threading.Lock()

    def take(self) -> bytes:
        with self._lock:
            if self._at + NONCE_SIZE > len(self._pool):
                self._pool, self._at = os.urandom(self._size), 0
            nonce = self._pool[self._at : self._at + NONCE_SIZE]
            self._at += NONCE_SIZE
            return nonce


nonces = _Nonces()
_PLAINTEXT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def seal(aead: AESGCM, value: Any, place: Place, path: str) -> dict[str, str]:
    nonce = nonces.take()
    sealed = aead.encrypt(nonce, _PLAINTEXT.encode(value).encode("utf-8"), place.ad(path))
    return {
        SEALED_MARK: SEALED_VERSION,
        "n": binascii.b2a_base64(nonce, newline=False).decode("ascii"),
        "c": binascii.b2a_base64(sealed, newline=False).decode("ascii"),
    }


def open_sealed(aead: AESGCM, value: Mapping[str, Any], place: Place, path: str) -> Any:
    try:
        nonce = binascii.a2b_base64(value["n"], strict_mode=True)
        sealed = binascii.a2b_base64(value["c"], strict_mode=True)
        return json.loads(aead.decrypt(nonce, sealed, place.ad(path)))
    except (KeyError, TypeError, binascii.Error, InvalidTag, ValueError):
        raise SealedFieldError(
            f"a sealed field of {place.event_type} version {place.version} of stream "
            f"{place.stream_id} does not open"
        ) from None


def seal_payload(aead: AESGCM, payload: Mapping[str, Any], place: Place) -> dict[str, Any]:
    """A copy of a case event's payload with its identifying values sealed."""
    out = dict(payload)
    for name in sealed_field_names(place.event_type):
        if out.get(name) is not None:
            out[name] = seal(aead, out[name], place, name)
    corrected = out.get(CORRECTED_VALUES)
    if place.event_type == "EntryCorrected" and isinstance(corrected, Mapping):
        identifying = any_identifying_name()
        out[CORRECTED_VALUES] = {
            key: (
                seal(aead, value, place, f"{CORRECTED_VALUES}.{key}")
                if key in identifying and value is not None
                else value
            )
            for key, value in corrected.items()
        }
    return out


def open_payload(
    aead: AESGCM | None,
    payload: Mapping[str, Any],
    place: Place,
    opener: Opener | None = None,
    names: Iterable[str] | None = None,
) -> tuple[dict[str, Any], bool] | None:
    """(a copy with sealed values opened, whether any read as erased), or None (and no copy)
    when nothing in the payload is sealed. Without a key (`aead` None) sealed values read as
    None: the case was erased. `opener` (default `open_sealed`) opens one value; `names`
    (default: every field) are the fields that may be sealed."""
    open_one = opener or open_sealed
    out: dict[str, Any] | None = None
    erased = False
    for name in payload if names is None else names:
        value = payload.get(name)
        if name == CORRECTED_VALUES and isinstance(value, Mapping):
            inner = open_payload(aead, dict(value), place.nested(CORRECTED_VALUES), opener)
            if inner is not None:
                out = dict(payload) if out is None else out
                out[name] = inner[0]
                erased = erased or inner[1]
            continue
        if not is_sealed(value):
            continue
        out = dict(payload) if out is None else out
        if aead is None:
            out[name] = None
            erased = True
        else:
            out[name] = open_one(aead, value, place, place.path(name))
    return None if out is None else (out, erased)
