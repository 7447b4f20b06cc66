"""Ed25519 signed tree heads over the event log's Merkle tree.

A signed tree head (STH) commits the service to "the log had ``tree_size`` events and
their Merkle root was ``root_hash`` at ``timestamp``". Anyone holding an STH and the public
key can later demand inclusion and consistency proofs (see ``merkle``) and so detect edits,
reordering, truncation or deletion of the log.

What is signed is :func:`tree_head_signing_input`, a fixed binary layout (all integers
big-endian, every field fixed-size or length-prefixed, so no two heads share an encoding)::

    b"referral-tree-head-v1\\n"   22 bytes, domain separation and version
    tree_size                    8 bytes, unsigned
    root_hash                    32 bytes
    timestamp                    8 bytes, signed: microseconds since 1970-01-01T00:00:00Z
    len(key_id)                  1 byte, unsigned, 1..255
    key_id                       ASCII bytes

``key_id`` is the first 16 hex characters of SHA-256 over the raw 32-byte public key.

The JSON form (:meth:`SignedTreeHead.to_json`) is an object with exactly the keys
``tree_size`` (integer), ``root_hash`` and ``signature`` (lowercase hex), ``timestamp``
(ISO 8601 UTC with microseconds, e.g. ``2025-01-31T12:00:00.000000Z``) and ``key_id``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

__all__ = [
    "SIGNING_DOMAIN",
    "SignedTreeHead",
    "TreeHeadFormatError",
    "TreeHeadKeyError",
    "TreeHeadSigner",
    "generate_signing_key_pem",
    "key_id_for",
    "load_public_key",
    "load_signing_key",
    "load_signing_key_from_file",
    "public_key_pem",
    "tree_head_signing_input",
    "verify_tree_head",
]

SIGNING_DOMAIN = b"referral-tree-head-v1\n"
"""Prefix of every signed tree head's signing input; bump the version to change the layout."""

_ROOT_SIZE = 32
_SIGNATURE_SIZE = 64
_SEED_SIZE = 32
_MAX_TREE_SIZE = 2**64 - 1
_MAX_KEY_ID_LENGTH = 255
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_HEX = re.compile(r"[0-9a-f]*")
_JSON_KEYS = frozenset({"tree_size", "root_hash", "timestamp", "key_id", "signature"})


class TreeHeadKeyError(ValueError):
    """A signing or verifying key could not be loaded. The message never holds key material."""


class TreeHeadFormatError(ValueError):
    """A serialised signed tree head is malformed."""


def tree_head_signing_input(
    tree_size: int, root_hash: bytes, timestamp: datetime, key_id: str
) -> bytes:
    """Return the exact bytes an STH signature covers (layout in the module docstring)."""
    _check_fields(tree_size, root_hash, timestamp, key_id)
    encoded_key_id = key_id.encode("ascii")
    return b"".join(
        (
            SIGNING_DOMAIN,
            struct.pack(">Q", tree_size),
            root_hash,
            struct.pack(">q", _epoch_microseconds(timestamp)),
            struct.pack(">B", len(encoded_key_id)),
            encoded_key_id,
        )
    )


@dataclass(frozen=True, slots=True)
class SignedTreeHead:
    """A Merkle root and size, signed with Ed25519 by the key named ``key_id``.

    ``timestamp`` must be timezone-aware; it is normalised to UTC.
    """

    tree_size: int
    root_hash: bytes
    timestamp: datetime
    key_id: str
    signature: bytes

    def __post_init__(self) -> None:
        _check_fields(self.tree_size, self.root_hash, self.timestamp, self.key_id)
        _check_bytes(self.signature, "signature", _SIGNATURE_SIZE)
        object.__setattr__(self, "timestamp", self.timestamp.astimezone(UTC))

    def signed_bytes(self) -> bytes:
        """The canonical bytes ``signature`` covers; see :func:`tree_head_signing_input`."""
        return tree_head_signing_input(self.tree_size, self.root_hash, self.timestamp, self.key_id)

    def to_json(self) -> str:
        """Serialise as compact JSON with sorted keys, hex bytes and an ISO 8601 UTC time."""
        return json.dumps(
            {
                "key_id": self.key_id,
                "root_hash": self.root_hash.hex(),
                "signature": self.signature.hex(),
                "timestamp": _format_timestamp(self.timestamp),
                "tree_size": self.tree_size,
            },
            sort_keys=True,
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> SignedTreeHead:
        """Parse :meth:`to_json` output; raises :class:`TreeHeadFormatError` if malformed."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            raise TreeHeadFormatError("signed tree head is not valid JSON") from None
        if not isinstance(data, dict) or set(data) != _JSON_KEYS:
            raise TreeHeadFormatError(
                f"signed tree head JSON must have exactly the keys {sorted(_JSON_KEYS)}"
            )
        try:
            return cls(
                tree_size=_json_int(data["tree_size"], "tree_size"),
                root_hash=_json_hex(data["root_hash"], "root_hash"),
                timestamp=_parse_timestamp(data["timestamp"]),
                key_id=_json_str(data["key_id"], "key_id"),
                signature=_json_hex(data["signature"], "signature"),
            )
        except TreeHeadFormatError:
            raise
        except ValueError as error:
            raise TreeHeadFormatError(f"signed tree head is invalid: {error}") from None


class TreeHeadSigner:
    """Signs tree heads with one Ed25519 private key."""

    __slots__ = ("_key_id", "_private_key")

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        if not isinstance(private_key, Ed25519PrivateKey):
            raise TypeError("private_key must be an Ed25519PrivateKey")
        self._private_key = private_key
        self._key_id = key_id_for(private_key.public_key())

    @property
    def key_id(self) -> str:
        """Identifier of this signer's public key, as written into every head it signs."""
        return self._key_id

    @property
    def public_key(self) -> Ed25519PublicKey:
        """The public key that verifies this signer's heads."""
        return self._private_key.public_key()

    def sign(self, tree_size: int, root_hash: bytes, timestamp: datetime) -> SignedTreeHead:
        """Sign ``tree_size``, ``root_hash`` and the aware ``timestamp``."""
        message = tree_head_signing_input(tree_size, root_hash, timestamp, self._key_id)
        return SignedTreeHead(
            tree_size=tree_size,
            root_hash=root_hash,
            timestamp=timestamp,
            key_id=self._key_id,
            signature=self._private_key.sign(message),
        )


def verify_tree_head(sth: SignedTreeHead, public_key: Ed25519PublicKey) -> bool:
    """True when ``sth`` names ``public_key`` and its signature verifies under it."""
    if not isinstance(public_key, Ed25519PublicKey):
        raise TypeError("public_key must be an Ed25519PublicKey")
    if sth.key_id != key_id_for(public_key):
        return False
    try:
        public_key.verify(sth.signature, sth.signed_bytes())
    except InvalidSignature:
        return False
    return True


def key_id_for(public_key: Ed25519PublicKey) -> str:
    """First 16 hex characters of SHA-256 over the raw 32-byte public key."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


# -- keys -------------------------------------------------------------------------------------


def load_signing_key(value: str) -> Ed25519PrivateKey:
    """Load an Ed25519 private key from unencrypted PKCS8 PEM, or a 32-byte seed in hex or base64.

    Raises :class:`TreeHeadKeyError` with a message that never repeats the value.
    """
    if not isinstance(value, str):
        raise TypeError("signing key must be given as text")
    text = value.strip()
    if text.startswith("-----BEGIN"):
        return _private_key_from_pem(text)
    return Ed25519PrivateKey.from_private_bytes(_decode_seed(text))


def load_signing_key_from_file(path: str | Path) -> Ed25519PrivateKey:
    """Read a file holding what :func:`load_signing_key` accepts."""
    try:
        text = Path(path).read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not ASCII text"
        raise TreeHeadKeyError(
            f"signing key file {str(path)!r} could not be read: {reason}"
        ) from None
    return load_signing_key(text)


def generate_signing_key_pem() -> str:
    """Generate a new Ed25519 private key as unencrypted PKCS8 PEM text."""
    return (
        Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode("ascii")
    )


def public_key_pem(private_key: Ed25519PrivateKey) -> str:
    """The SubjectPublicKeyInfo PEM of ``private_key``'s public half."""
    return (
        private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )


def load_public_key(pem: str) -> Ed25519PublicKey:
    """Load an Ed25519 public key from SubjectPublicKeyInfo PEM text."""
    try:
        key = serialization.load_pem_public_key(pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError, UnsupportedAlgorithm):
        raise TreeHeadKeyError("public key is not a valid SubjectPublicKeyInfo PEM") from None
    if not isinstance(key, Ed25519PublicKey):
        raise TreeHeadKeyError("public key is not an Ed25519 key")
    return key


def _private_key_from_pem(text: str) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(text.encode("ascii"), password=None)
    except TypeError:
        raise TreeHeadKeyError(
            "signing key PEM is encrypted; an unencrypted PKCS8 key is needed"
        ) from None
    except (ValueError, UnicodeEncodeError, UnsupportedAlgorithm):
        raise TreeHeadKeyError("signing key PEM could not be parsed as PKCS8") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise TreeHeadKeyError("signing key PEM holds a key that is not Ed25519")
    return key


def _decode_seed(text: str) -> bytes:
    """Decode a 32-byte seed written as 64 hex digits or (URL-safe) base64."""
    if re.fullmatch(r"[0-9a-fA-F]{64}", text):
        return bytes.fromhex(text)
    standard = text.replace("-", "+").replace("_", "/")
    padded = standard + "=" * (-len(standard) % 4)
    try:
        seed = base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        seed = b""
    if len(seed) != _SEED_SIZE:
        raise TreeHeadKeyError(
            "signing key is neither PKCS8 PEM nor a 32-byte seed in hex or base64"
        )
    return seed


# -- field checks and encodings --------------------------------------------------------------


def _check_fields(tree_size: int, root_hash: bytes, timestamp: datetime, key_id: str) -> None:
    _check_tree_size(tree_size)
    _check_bytes(root_hash, "root_hash", _ROOT_SIZE)
    if not isinstance(timestamp, datetime):
        raise TypeError("timestamp must be a datetime")
    if timestamp.utcoffset() is None:
        raise ValueError("timestamp must be timezone-aware")
    if not isinstance(key_id, str):
        raise TypeError("key_id must be a str")
    if not _is_valid_key_id(key_id):
        raise ValueError(f"key_id must be 1 to {_MAX_KEY_ID_LENGTH} printable ASCII characters")


def _check_tree_size(tree_size: int) -> None:
    if not isinstance(tree_size, int) or isinstance(tree_size, bool):
        raise TypeError("tree_size must be an int")
    if not 0 <= tree_size <= _MAX_TREE_SIZE:
        raise ValueError("tree_size must fit in an unsigned 64-bit integer")


def _check_bytes(value: bytes, name: str, size: int) -> None:
    if not isinstance(value, bytes):
        raise TypeError(f"{name} must be bytes")
    if len(value) != size:
        raise ValueError(f"{name} must be {size} bytes, not {len(value)}")


def _is_valid_key_id(key_id: str) -> bool:
    return 0 < len(key_id) <= _MAX_KEY_ID_LENGTH and key_id.isascii() and key_id.isprintable()


def _epoch_microseconds(timestamp: datetime) -> int:
    return (timestamp - _EPOCH) // timedelta(microseconds=1)


def _format_timestamp(timestamp: datetime) -> str:
    utc = timestamp.astimezone(UTC).replace(tzinfo=None)
    return utc.isoformat(timespec="microseconds") + "Z"


def _parse_timestamp(value: Any) -> datetime:
    if not isinstance(value, str):
        raise TreeHeadFormatError("timestamp must be an ISO 8601 string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise TreeHeadFormatError("timestamp is not ISO 8601") from None
    if parsed.utcoffset() is None:
        raise TreeHeadFormatError("timestamp must carry a UTC offset")
    return parsed.astimezone(UTC)


def _json_int(value: Any, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TreeHeadFormatError(f"{name} must be a JSON integer")
    return value


def _json_str(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise TreeHeadFormatError(f"{name} must be a JSON string")
    return value


def _json_hex(value: Any, name: str) -> bytes:
    if not isinstance(value, str) or len(value) % 2 or not _HEX.fullmatch(value):
        raise TreeHeadFormatError(f"{name} must be lowercase hex")
    return bytes.fromhex(value)
