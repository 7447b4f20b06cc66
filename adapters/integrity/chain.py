"""The hash chain of each stream and the Merkle leaf of each event: one definition for all.

Every stored event's state starts with a small header that links it to the previous event of
its stream, and the rest is what the mapper wrote (ciphertext included, so erasing a case by
destroying its key never breaks the chain)::

    b"RF1"            3 bytes, magic and version
    previous hash     32 bytes: event_hash of version - 1 of the same stream, or 32 zero bytes
    body              the mapper's bytes

The hash of an event covers what identifies it and every stored byte of it, in a
domain-separated, length-prefixed encoding (integers big-endian), so no two events share an
encoding::

    b"referral-event-v1\\x00"
    len(id) u32 || id          b"u" + 16 raw bytes for a UUID, b"s" + UTF-8 for a text id
    originator_version u64
    len(topic) u32 || topic    UTF-8
    len(state) u64 || state    the whole stored state, header included

An event's Merkle leaf (RFC 9162 leaf data, hashed with `merkle.leaf_hash`) binds it to its
position in the global log, so moving an event shows as a leaf at the wrong position::

    b"referral-leaf-v1\\x00" || position u64 || event_hash

The writer (`recorders`), the read model of leaves (`projections.integrity`) and the verifier
(`verify`) all call these functions; nothing else defines them.
"""

from __future__ import annotations

import hashlib
import struct
from uuid import UUID

from adapters.integrity.merkle import HASH_SIZE

__all__ = [
    "HEADER_SIZE",
    "MAGIC",
    "ZERO_HASH",
    "ChainHeaderError",
    "event_hash",
    "event_hash_from_parts",
    "event_leaf_hash",
    "id_bytes",
    "split_header",
    "stream_prefix",
    "topic_part",
    "with_header",
]

MAGIC = b"RF1"
HEADER_SIZE = len(MAGIC) + HASH_SIZE
ZERO_HASH = bytes(HASH_SIZE)
"""The previous hash of every stream's first event."""

_EVENT_DOMAIN = b"referral-event-v1\x00"
_LEAF_DOMAIN = b"referral-leaf-v1\x00"
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_LEAF_INPUT_PREFIX = b"\x00" + _LEAF_DOMAIN
"""RFC 9162's leaf prefix 0x00, then the leaf data's domain."""


class ChainHeaderError(ValueError):
    """A stored state does not start with the chain header."""


def id_bytes(originator_id: UUID | str) -> bytes:
    """The encoding of a stream id inside an event hash (a UUID's hex text counts as the UUID)."""
    if isinstance(originator_id, UUID):
        return b"u" + originator_id.bytes
    if len(originator_id) == 32:  # noqa: PLR2004 -- SQLite stores UUIDs as 32 hex digits
        try:
            return b"u" + bytes.fromhex(originator_id)
        except ValueError:
            pass
    return b"s" + originator_id.encode("utf-8")


def stream_prefix(originator_id: UUID | str) -> bytes:
    """The start of every event hash input of one stream: domain, then the length-prefixed id."""
    ident = id_bytes(originator_id)
    return _EVENT_DOMAIN + _U32.pack(len(ident)) + ident


def topic_part(topic: str) -> bytes:
    """The length-prefixed topic inside an event hash input."""
    encoded = topic.encode("utf-8")
    return _U32.pack(len(encoded)) + encoded


def event_hash_from_parts(prefix: bytes, version: int, topic: bytes, state: bytes) -> bytes:
    """`event_hash` with the stream prefix and topic part already encoded (for long runs)."""
    digest = hashlib.sha256(prefix + _U64.pack(version) + topic + _U64.pack(len(state)))
    digest.update(state)
    return digest.digest()


def event_hash(originator_id: UUID | str, version: int, topic: str, state: bytes) -> bytes:
    """SHA-256 over the encoding in the module docstring."""
    return event_hash_from_parts(stream_prefix(originator_id), version, topic_part(topic), state)


def with_header(previous: bytes, body: bytes) -> bytes:
    """The stored state: header naming the previous event's hash, then the mapper's bytes."""
    if len(previous) != HASH_SIZE:
        raise ValueError(f"the previous hash must be {HASH_SIZE} bytes")
    return MAGIC + previous + body


def split_header(state: bytes) -> tuple[bytes, bytes]:
    """(previous hash, body) of a stored state; `ChainHeaderError` when it has no header."""
    if len(state) < HEADER_SIZE or not state.startswith(MAGIC):
        raise ChainHeaderError("the stored state has no chain header")
    return state[len(MAGIC) : HEADER_SIZE], state[HEADER_SIZE:]


def event_leaf_hash(position: int, event_digest: bytes) -> bytes:
    """The RFC 9162 leaf hash of the event at `position` of the global log.

    Equal to `merkle.leaf_hash(b"referral-leaf-v1\\x00" || position u64 || event_digest)`,
    written out so a long verification run skips a call.
    """
    return hashlib.sha256(_LEAF_INPUT_PREFIX + _U64.pack(position) + event_digest).digest()
