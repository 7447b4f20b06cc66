"""Master keys: the keys that wrap every case key, from the environment or a file, never stored.

The text form is a comma- or newline-separated list of `ID:BASE64` entries, each a 32-byte
AES-256 key with a short identifier (letters, digits, `_` and `-`, at most 32). The first entry
is the current key, used to wrap new case keys and by `Keyring.rotate`; the others only unwrap
case keys still wrapped by them. Errors name the setting, never a key.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

MASTER_KEYS_SETTING = "REFERRAL_MASTER_KEYS"
MASTER_KEY_FILE_SETTING = "REFERRAL_MASTER_KEY_FILE"
KEY_SIZE = 32
_KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")


class MasterKeyError(ValueError):
    """Master keys are missing or malformed; the message names the setting, never a key."""


@dataclass(frozen=True)
class MasterKeys:
    """The configured master keys by id; `current_id` wraps new case keys."""

    current_id: str
    keys: Mapping[str, bytes]

    def __post_init__(self) -> None:
        if self.current_id not in self.keys:
            raise MasterKeyError("the current master key is not among the master keys")

    def __repr__(self) -> str:
        return f"MasterKeys(current_id={self.current_id!r}, ids={sorted(self.keys)!r})"

    @property
    def current(self) -> bytes:
        return self.keys[self.current_id]

    @classmethod
    def parse(cls, text: str, *, source: str = MASTER_KEYS_SETTING) -> MasterKeys:
        """Parse `ID:BASE64[,ID:BASE64…]`; the first is current."""
        entries = [e.strip() for e in re.split(r"[,\n]", text) if e.strip()]
        if not entries:
            raise MasterKeyError(f"{source} holds no master key")
        keys: dict[str, bytes] = {}
        for number, entry in enumerate(entries, start=1):
            key_id, sep, encoded = entry.partition(":")
            if not sep or not _KEY_ID.fullmatch(key_id):
                raise MasterKeyError(f"{source}: entry {number} is not ID:BASE64")
            if key_id in keys:
                raise MasterKeyError(f"{source}: master key id {key_id} appears twice")
            keys[key_id] = _decode(encoded.strip(), source, number)
        return cls(next(iter(keys)), keys)

    @classmethod
    def from_file(cls, path: str | Path, *, source: str = MASTER_KEY_FILE_SETTING) -> MasterKeys:
        try:
            text = Path(path).read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError):
            raise MasterKeyError(f"{source}: the file cannot be read as ASCII text") from None
        return cls.parse(text, source=source)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> MasterKeys | None:
        """The keys REFERRAL_MASTER_KEYS or REFERRAL_MASTER_KEY_FILE name, or None."""
        env = os.environ if env is None else env
        if env.get(MASTER_KEYS_SETTING, "").strip():
            return cls.parse(env[MASTER_KEYS_SETTING])
        if env.get(MASTER_KEY_FILE_SETTING, "").strip():
            return cls.from_file(env[MASTER_KEY_FILE_SETTING])
        return None

    def with_current(self, key_id: str) -> MasterKeys:
        return MasterKeys(key_id, self.keys)


def _decode(encoded: str, source: str, number: int) -> bytes:
    padded = encoded.replace("-", "+").replace("_", "/")
    padded += "=" * (-len(padded) % 4)
    try:
        key = base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        raise MasterKeyError(f"{source}: entry {number} is not base64") from None
    if len(key) != KEY_SIZE:
        raise MasterKeyError(f"{source}: entry {number} is not a {KEY_SIZE}-byte key")
    return key


def generate_master_key_entry(key_id: str) -> str:
    """A new `ID:BASE64` entry with a random 32-byte key."""
    if not _KEY_ID.fullmatch(key_id):
        raise MasterKeyError("a master key id has 1 to 32 letters, digits, '_' or '-'")
    return f"{key_id}:{base64.b64encode(secrets.token_bytes(KEY_SIZE)).decode('ascii')}"
