"""The keys the settings name: master keys for case keys, the tree-head signing key.

Configured keys come from the environment (`REFERRAL_MASTER_KEYS`, `REFERRAL_SIGNING_KEY`) or
files (`…_FILE`). On SQLite, when none is configured (the `make run` demo), development keys are
generated once into `$REFERRAL_DATA_DIR/keys/` (directory 0700, files 0600; `var/` is not
committed). On PostgreSQL a master key must be configured: the service refuses to start
without one; without a signing key it runs, and no tree head is signed.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from adapters.crypto.master import (
    MASTER_KEY_FILE_SETTING,
    MASTER_KEYS_SETTING,
    MasterKeyError,
    MasterKeys,
    generate_master_key_entry,
)
from adapters.integrity.tree_head import (
    TreeHeadKeyError,
    TreeHeadSigner,
    generate_signing_key_pem,
    load_signing_key,
    load_signing_key_from_file,
)
from adapters.store import ConfigurationError, parse_database_url
from api.settings import Settings
from projections.base import Projection
from projections.integrity import (
    SIGNING_KEY_FILE_SETTING,
    SIGNING_KEY_SETTING,
    IntegrityProjection,
)

__all__ = ["SIGNING_KEY_FILE_SETTING", "SIGNING_KEY_SETTING", "master_keys", "tree_head_signer"]
DEV_KEYS_DIR = "keys"
DEV_MASTER_FILE = "master-keys"
DEV_SIGNING_FILE = "signing-key.pem"


def _embedded(settings: Settings) -> bool:
    return not parse_database_url(settings.database_url).is_postgres


def _dev_file(settings: Settings, name: str, make: str) -> Path:
    """A development key file in the data directory, created once with owner-only access."""
    directory = settings.data_dir / DEV_KEYS_DIR
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    path = directory / name
    if not path.exists():
        with contextlib.suppress(FileExistsError):  # another process made it first: use it
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="ascii") as handle:
                handle.write(make + "\n")
    return path


def master_keys(settings: Settings) -> MasterKeys:
    """The configured master keys; development keys on SQLite; else a ConfigurationError."""
    try:
        if settings.master_keys.get_secret_value().strip():
            return MasterKeys.parse(settings.master_keys.get_secret_value())
        if settings.master_key_file is not None:
            return MasterKeys.from_file(settings.master_key_file)
        if _embedded(settings):
            entry = generate_master_key_entry("dev1")
            return MasterKeys.from_file(_dev_file(settings, DEV_MASTER_FILE, entry))
    except MasterKeyError as exc:
        raise ConfigurationError(str(exc)) from None
    raise ConfigurationError(
        f"{MASTER_KEYS_SETTING} (or {MASTER_KEY_FILE_SETTING}) is required with PostgreSQL: "
        "the master key that wraps every case key"
    )


def tree_head_signer(settings: Settings) -> TreeHeadSigner | None:
    """The signer of tree heads, or None when no signing key is configured (PostgreSQL)."""
    try:
        if settings.signing_key.get_secret_value().strip():
            return TreeHeadSigner(load_signing_key(settings.signing_key.get_secret_value()))
        if settings.signing_key_file is not None:
            return TreeHeadSigner(load_signing_key_from_file(settings.signing_key_file))
        if _embedded(settings):
            path = _dev_file(settings, DEV_SIGNING_FILE, generate_signing_key_pem().strip())
            return TreeHeadSigner(load_signing_key_from_file(path))
    except TreeHeadKeyError as exc:
        raise ConfigurationError(f"{SIGNING_KEY_SETTING}: {exc}") from None
    return None


def verifying_key(settings: Settings) -> Ed25519PublicKey | None:
    signer = tree_head_signer(settings)
    return None if signer is None else signer.public_key


def configured(projections: list[Projection], settings: Settings) -> list[Projection]:
    """The read models with the integrity one given its signer and schedule."""
    signer = tree_head_signer(settings)
    for projection in projections:
        if isinstance(projection, IntegrityProjection):
            projection.configure(
                signer, every=settings.checkpoint_every, minutes=settings.checkpoint_minutes
            )
    return projections
