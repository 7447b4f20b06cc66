"""Persistence: one setting, REFERRAL_DATABASE_URL, mapped onto eventsourcing's environment.

`sqlite:///PATH` (the embedded default) or `postgresql://USER:PASSWORD@HOST:PORT/DB[?schema=S]`.
PostgreSQL database functions stay off: they drop the table lock that keeps tailing readers from
skipping events (see DESIGN.md).

`build_application` returns the application with its integrity and privacy machinery: a recorder
that chains every stored event to the previous one of its stream (`adapters.integrity`), and a
mapper that seals identifying fields under per-case keys wrapped by the master keys
(`adapters.crypto`). The master keys come from the caller or REFERRAL_MASTER_KEYS /
REFERRAL_MASTER_KEY_FILE; without them it refuses to start.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit
from uuid import UUID

from eventsourcing.application import Repository
from eventsourcing.persistence import EventStore, Mapper

from adapters.crypto.keyring import Keyring
from adapters.crypto.keystore import keystore_for
from adapters.crypto.mapper import CaseKeyMapper
from adapters.crypto.master import (
    MASTER_KEY_FILE_SETTING,
    MASTER_KEYS_SETTING,
    MasterKeyError,
    MasterKeys,
)
from adapters.crypto.shred import checkpoint_wal, delete_snapshots
from adapters.integrity.recorders import POSTGRES_RECORDER_TOPIC, SQLITE_RECORDER_TOPIC
from referral_core.application import ReferralApplication
from referral_core.clock import Clock, utc_now

DATABASE_URL_SETTING = "REFERRAL_DATABASE_URL"
DEFAULT_DATABASE_URL = "sqlite:///var/referral.sqlite"


class ConfigurationError(ValueError):
    """A setting has a value the service cannot use; the message names the setting."""


@dataclass(frozen=True)
class StoreConfig:
    """The parsed database URL and the eventsourcing environment it maps to."""

    url: str
    kind: str
    env: dict[str, str]

    @property
    def is_postgres(self) -> bool:
        return self.kind == "postgres"


def _bad(url: str, why: str) -> ConfigurationError:
    shown = url.rsplit("@", maxsplit=1)[-1] if "@" in url else url
    return ConfigurationError(f"{DATABASE_URL_SETTING} is invalid ({why}): {shown[:100]}")


def parse_database_url(url: str, *, pool_size: int = 5) -> StoreConfig:
    """Map a database URL onto eventsourcing's environment variables."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise _bad(url, "not a URL") from exc
    if parts.scheme == "sqlite":
        return _sqlite(url, parts.netloc, parts.path)
    if parts.scheme in ("postgresql", "postgres", "postgresql+psycopg"):
        return _postgres(url, parts, pool_size)
    raise _bad(url, "use sqlite:///PATH or postgresql://USER:PASSWORD@HOST:PORT/DB")


def _sqlite(url: str, netloc: str, path: str) -> StoreConfig:
    if netloc:
        raise _bad(url, "sqlite URLs have three slashes: sqlite:///PATH")
    name = unquote(path[1:] if path.startswith("/") else path)
    if not name:
        raise _bad(url, "no file path")
    if name != ":memory:":
        Path(name).parent.mkdir(parents=True, exist_ok=True)
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": name,
        "SQLITE_LOCK_TIMEOUT": "10",
    }
    return StoreConfig(url, "sqlite", env)


def _postgres(url: str, parts: object, pool_size: int) -> StoreConfig:
    from urllib.parse import SplitResult

    assert isinstance(parts, SplitResult)  # noqa: S101 -- narrows the type for mypy
    try:
        port = parts.port or 5432
    except ValueError as exc:
        raise _bad(url, "the port is not a number") from exc
    dbname = unquote(parts.path.lstrip("/"))
    if not parts.hostname or not dbname:
        raise _bad(url, "a host and a database name are required")
    query = parse_qs(parts.query)
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": dbname,
        "POSTGRES_HOST": parts.hostname,
        "POSTGRES_PORT": str(port),
        "POSTGRES_USER": unquote(parts.username or "postgres"),
        "POSTGRES_PASSWORD": unquote(parts.password or ""),
        "POSTGRES_CONNECT_TIMEOUT": "5",
        "POSTGRES_LOCK_TIMEOUT": "10",
        "POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT": "10",
        "POSTGRES_POOL_SIZE": str(pool_size),
        "POSTGRES_MAX_OVERFLOW": str(pool_size),
        "POSTGRES_PRE_PING": "y",
        # Never on: it drops the append lock and writes into the wrong table (DESIGN.md).
        "POSTGRES_ENABLE_DB_FUNCTIONS": "n",
    }
    if "schema" in query:
        schema = query["schema"][0]
        if not schema.isidentifier():
            raise _bad(url, "schema must be a plain identifier")
        env["POSTGRES_SCHEMA"] = schema
    return StoreConfig(url, "postgres", env)


RECORDER_SETTING = "APPLICATION_RECORDER_TOPIC"


class ProtectedApplication(ReferralApplication):
    """The referral application with chained stored events and per-case sealed fields."""

    name = ReferralApplication.name  # keeps the table names (referral_events, …)

    def __init__(
        self,
        env: dict[str, str],
        clock: Clock = utc_now,
        *,
        master_keys: MasterKeys,
    ) -> None:
        self.keyring = Keyring(master_keys)
        super().__init__(env, clock)
        self.keyring.bind(keystore_for(self.recorder))

    def construct_mapper(self) -> Mapper[UUID]:
        return CaseKeyMapper(self.construct_transcoder(), self.keyring)

    def expect_reads(self, case_ids: Iterable[UUID | str]) -> None:
        self.keyring.preload(case_ids)

    def construct_repository(self) -> Repository[UUID]:
        """The repository loads aggregates with a fold mapper, which leaves sealed what the
        case's fold never reads (`adapters.crypto.fields.fold_names`); `events` (history,
        projections) opens everything."""
        full_events, full_snapshots = self.events, self.snapshots
        fold = CaseKeyMapper(self.mapper.transcoder, self.keyring, fold=True)
        self.events = EventStore(fold, self.recorder)
        if full_snapshots is not None:
            self.snapshots = EventStore(fold, full_snapshots.recorder)
        try:
            return super().construct_repository()
        finally:
            self.events, self.snapshots = full_events, full_snapshots

    def shred_case(self, case_id: UUID) -> None:
        """Delete the case's snapshots, then destroy its key: its sealed fields are gone."""
        if self.snapshots is not None:
            delete_snapshots(self.snapshots.recorder, case_id)
        self.keyring.destroy(case_id)
        self.case_cache.forget(case_id)  # its folded copy still holds the opened birth date

    def flush_overwritten(self) -> None:
        """After read models were scrubbed: leave no old page copy in SQLite's WAL."""
        checkpoint_wal(self.recorder)


def master_keys_from_env() -> MasterKeys:
    """The master keys the environment names; a ConfigurationError naming the setting if none."""
    try:
        keys = MasterKeys.from_env()
    except MasterKeyError as exc:
        raise ConfigurationError(str(exc)) from None
    if keys is None:
        raise ConfigurationError(
            f"{MASTER_KEYS_SETTING} (or {MASTER_KEY_FILE_SETTING}) is required: "
            "the master key that wraps every case key"
        )
    return keys


def application_env(database_url: str, *, pool_size: int = 5) -> dict[str, str]:
    """The eventsourcing environment of the URL, with the chaining recorder selected."""
    config = parse_database_url(database_url, pool_size=pool_size)
    topic = POSTGRES_RECORDER_TOPIC if config.is_postgres else SQLITE_RECORDER_TOPIC
    return {**config.env, RECORDER_SETTING: topic}


def build_application(
    database_url: str = DEFAULT_DATABASE_URL,
    *,
    clock: Clock = utc_now,
    pool_size: int = 5,
    master_keys: MasterKeys | None = None,
) -> ProtectedApplication:
    """The referral application on the store the URL names, sealed with these master keys."""
    env = application_env(database_url, pool_size=pool_size)
    keys = master_keys or master_keys_from_env()
    return ProtectedApplication(env, clock, master_keys=keys)
