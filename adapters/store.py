"""Persistence: one setting, REFERRAL_DATABASE_URL, mapped onto eventsourcing's environment.

`sqlite:///PATH` (the embedded default) or `postgresql://USER:PASSWORD@HOST:PORT/DB[?schema=S]`.
PostgreSQL database functions stay off: they drop the table lock that keeps tailing readers from
skipping events (see DESIGN.md).

`build_application` returns the application with its integrity and privacy machinery: a recorder
that chains every stored event to the previous one of its stream (`adapters.integrity`), and a
mapper that seals identifying fields under per-case keys wrapped by the master keys
(`adapters.crypto`). The master keys come from the caller or REFERRAL_MASTER_KEYS /
REFERRAL_MASTER_KEY_FILE; without them it refuses to start.

On PostgreSQL a request fails fast when the server is away and the pool heals by itself when it
is back (`adapters.connections`); with REFERRAL_CREATE_TABLES=false the application creates no
table, so it starts on a hot standby.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit
from uuid import UUID

from eventsourcing.application import Repository
from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import EventStore, Mapper, Notification
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from eventsourcing.sqlite import SQLiteApplicationRecorder

from adapters.connections import CONNECT_TIMEOUT_SECONDS, POOL_TIMEOUT_SECONDS, harden
from adapters.crypto.keyring import Keyring
from adapters.crypto.keystore import KeyStore, PostgresKeyStore, SqliteKeyStore, keystore_for
from adapters.crypto.mapper import CaseKeyMapper
from adapters.crypto.master import (
    MASTER_KEY_FILE_SETTING,
    MASTER_KEYS_SETTING,
    MasterKeyError,
    MasterKeys,
)
from adapters.crypto.shred import checkpoint_wal, delete_snapshots
from adapters.integrity import log_reader
from adapters.integrity.recorders import POSTGRES_RECORDER_TOPIC, SQLITE_RECORDER_TOPIC
from referral_core.application import ReferralApplication
from referral_core.clock import Clock, utc_now

DATABASE_URL_SETTING = "REFERRAL_DATABASE_URL"
CREATE_TABLES_SETTING = "REFERRAL_CREATE_TABLES"
CREATE_TABLE_SETTING = "CREATE_TABLE"  # eventsourcing's
_BOOLEAN = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
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
        # How long a statement waits for a pooled connection; with the server away a request
        # fails after this long and the API answers 503 (adapters.connections).
        "POSTGRES_CONNECT_TIMEOUT": str(POOL_TIMEOUT_SECONDS),
        "POSTGRES_LOCK_TIMEOUT": "10",
        "POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT": "10",
        "POSTGRES_POOL_SIZE": str(pool_size),
        "POSTGRES_MAX_OVERFLOW": str(pool_size),
        # No round trip per checkout: a broken connection drains the pool instead
        # (adapters.connections), so the request after a server restart gets a fresh one.
        "POSTGRES_PRE_PING": "n",
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
        create_tables: bool = True,
    ) -> None:
        self.keyring = Keyring(master_keys)
        env = {**env, CREATE_TABLE_SETTING: "y" if create_tables else "n"}
        with _one_creator(env if create_tables else None):
            super().__init__(env, clock)
            datastore = getattr(self.factory, "datastore", None)
            if isinstance(datastore, PostgresDatastore):
                harden(datastore)
            keys = (
                keystore_for(self.recorder) if create_tables else existing_keystore(self.recorder)
            )
        self.keyring.bind(keys)

    def construct_mapper(self) -> Mapper[UUID]:
        return CaseKeyMapper(self.construct_transcoder(), self.keyring)

    def expect_reads(self, case_ids: Iterable[UUID | str]) -> None:
        self.keyring.preload(case_ids)

    def stream_ends(self, upto: int) -> dict[UUID, int]:
        return log_reader.stream_ends(self.recorder, upto)

    def log_page(self, after: int, limit: int) -> Sequence[Notification]:
        """The rows as tuples (the recorder builds a dict per row, then a Notification)."""
        return log_reader.notifications(self.recorder, after, limit)

    def log_decoder(self) -> Callable[[Notification], DomainEventProtocol[UUID]]:
        """A full mapper that keeps no opened payloads: each event of the log is read once."""
        return CaseKeyMapper(self.mapper.transcoder, self.keyring, keep=False).to_domain_event

    def log_fold_decoder(self) -> Callable[[Notification], DomainEventProtocol[UUID]]:
        """A mapper that opens of a case event only what the case's fold reads, keeping none."""
        mapper = CaseKeyMapper(self.mapper.transcoder, self.keyring, keep=False, fold=True)
        return mapper.to_domain_event

    def log_envelope_decoder(self) -> Callable[[Notification], DomainEventProtocol[UUID]]:
        """A mapper that opens no case event's sealed values, nor fetches its case's key."""
        mapper = CaseKeyMapper(self.mapper.transcoder, self.keyring, keep=False, open_cases=False)
        return mapper.to_domain_event

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


def existing_keystore(recorder: object) -> KeyStore:
    """The key store of the recorder's database, without creating its table."""
    if isinstance(recorder, PostgresApplicationRecorder):
        return PostgresKeyStore(recorder)
    if isinstance(recorder, SQLiteApplicationRecorder):
        return SqliteKeyStore(recorder)
    raise TypeError(f"no key store for {type(recorder).__name__}")


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


def create_tables_from_env() -> bool:
    """REFERRAL_CREATE_TABLES: false on a node that must not write (a hot standby)."""
    value = os.environ.get(CREATE_TABLES_SETTING, "true").strip().lower()
    if value not in _BOOLEAN:
        raise ConfigurationError(f"{CREATE_TABLES_SETTING} must be true or false")
    return _BOOLEAN[value]


def build_application(
    database_url: str = DEFAULT_DATABASE_URL,
    *,
    clock: Clock = utc_now,
    pool_size: int = 5,
    master_keys: MasterKeys | None = None,
    create_tables: bool | None = None,
) -> ProtectedApplication:
    """The referral application on the store the URL names, sealed with these master keys.

    With `create_tables` false (default: REFERRAL_CREATE_TABLES) it creates no table and
    writes nothing at start, so it starts on a hot standby; the tables must exist (created on
    the primary and replicated). On PostgreSQL, processes that create tables take turns
    (`_one_creator`): two first starts at once would otherwise collide in the catalog.
    """
    env = application_env(database_url, pool_size=pool_size)
    keys = master_keys or master_keys_from_env()
    create = create_tables_from_env() if create_tables is None else create_tables
    return ProtectedApplication(env, clock, master_keys=keys, create_tables=create)


@contextmanager
def _one_creator(env: dict[str, str] | None) -> Iterator[None]:
    """On PostgreSQL, hold a session advisory lock of the schema while the tables are created.

    `CREATE TABLE IF NOT EXISTS` (and `CREATE OR REPLACE FUNCTION`) in two sessions at once can
    fail with "tuple concurrently updated" or a duplicate key in the catalog; the lock makes the
    second process wait until the first has committed its tables. One connection, at start only.
    """
    if env is None or env.get("PERSISTENCE_MODULE") != "eventsourcing.postgres":
        yield
        return
    import psycopg

    schema = env.get("POSTGRES_SCHEMA", "public")
    key = int.from_bytes(hashlib.sha256(f"referral:tables:{schema}".encode()).digest()[:8]) >> 1
    with psycopg.connect(
        host=env["POSTGRES_HOST"],
        port=env["POSTGRES_PORT"],
        dbname=env["POSTGRES_DBNAME"],
        user=env["POSTGRES_USER"],
        password=env.get("POSTGRES_PASSWORD") or None,
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        autocommit=True,
    ) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (key,))
        yield
