"""The `case_keys` table, beside the events, on SQLite or PostgreSQL.

One row per case: the case's data key wrapped by a master key, that master key's id, when the
key was created, and when it was destroyed. Destroying a key overwrites the wrapped key with
NULL and keeps the row, so no key can ever be created again for an erased case.

The table lives in the event store's own database and uses the event store's connections
(eventsourcing's datastore of the application's recorder), so it needs no settings of its own.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from eventsourcing.persistence import ApplicationRecorder
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder

TABLE = "case_keys"


@dataclass(frozen=True)
class KeyRow:
    case_id: str
    wrapped: bytes | None
    master_key_id: str | None
    created_at: str
    destroyed_at: str | None

    @property
    def destroyed(self) -> bool:
        return self.destroyed_at is not None


class KeyStore(Protocol):
    def create_table(self) -> None: ...

    def insert_if_absent(
        self, case_id: str, wrapped: bytes, master_key_id: str, created_at: str
    ) -> KeyRow: ...

    def get(self, case_id: str) -> KeyRow | None: ...

    def get_many(self, case_ids: Sequence[str]) -> list[KeyRow]: ...

    def destroy(self, case_id: str, destroyed_at: str) -> None: ...

    def wrapped_by_others(self, master_key_id: str, after: str, limit: int) -> list[KeyRow]: ...

    def rewrap(
        self, case_id: str, old_master_id: str, wrapped: bytes, master_key_id: str
    ) -> bool: ...


_COLUMNS = "case_id, wrapped_key, master_key_id, created_at, destroyed_at"


def _row(row: Any) -> KeyRow:
    wrapped = row["wrapped_key"]
    return KeyRow(
        case_id=str(row["case_id"]),
        wrapped=None if wrapped is None else bytes(wrapped),
        master_key_id=row["master_key_id"],
        created_at=str(row["created_at"]),
        destroyed_at=None if row["destroyed_at"] is None else str(row["destroyed_at"]),
    )


GET_MANY_CHUNK = 500


class _SqlKeyStore:
    """The statements, written once with `?`; each dialect runs them."""

    table: str
    placeholder = "?"

    def _sql(self, sql: str) -> str:
        return sql.replace("{t}", self.table).replace("?", self.placeholder)

    @contextmanager
    def _cursor(self, *, commit: bool) -> Iterator[Any]:
        raise NotImplementedError
        yield  # pragma: no cover

    def _execute(self, sql: str, params: Sequence[Any] = (), *, commit: bool = True) -> list[Any]:
        with self._cursor(commit=commit) as curs:
            curs.execute(self._sql(sql), tuple(params))
            if sql.lstrip().upper().startswith("SELECT"):
                return list(curs.fetchall())
            return []

    def insert_if_absent(
        self, case_id: str, wrapped: bytes, master_key_id: str, created_at: str
    ) -> KeyRow:
        """Insert the row unless the case has one, and return the case's row: one commit."""
        with self._cursor(commit=True) as curs:
            curs.execute(
                self._sql(
                    f"INSERT INTO {{t}} ({_COLUMNS}) VALUES (?, ?, ?, ?, NULL) "  # noqa: S608
                    "ON CONFLICT (case_id) DO NOTHING"
                ),
                (case_id, wrapped, master_key_id, created_at),
            )
            curs.execute(
                self._sql(f"SELECT {_COLUMNS} FROM {{t}} WHERE case_id = ?"),  # noqa: S608
                (case_id,),
            )
            return _row(curs.fetchone())

    def get(self, case_id: str) -> KeyRow | None:
        rows = self._execute(
            f"SELECT {_COLUMNS} FROM {{t}} WHERE case_id = ?",  # noqa: S608 -- constant names
            (case_id,),
            commit=False,
        )
        return _row(rows[0]) if rows else None

    def get_many(self, case_ids: Sequence[str]) -> list[KeyRow]:
        """The rows of these cases that exist, in one query per few hundred ids."""
        found: list[KeyRow] = []
        for start in range(0, len(case_ids), GET_MANY_CHUNK):
            chunk = list(case_ids[start : start + GET_MANY_CHUNK])
            marks = ", ".join("?" * len(chunk))
            rows = self._execute(
                f"SELECT {_COLUMNS} FROM {{t}} WHERE case_id IN ({marks})",  # noqa: S608 -- constant names and placeholders
                chunk,
                commit=False,
            )
            found.extend(_row(row) for row in rows)
        return found

    def destroy(self, case_id: str, destroyed_at: str) -> None:
        with self._cursor(commit=True) as curs:
            self._before_destroy(curs)
            curs.execute(
                self._sql(
                    f"INSERT INTO {{t}} AS k ({_COLUMNS}) VALUES (?, NULL, NULL, ?, ?) "  # noqa: S608 -- constant names
                    "ON CONFLICT (case_id) DO UPDATE SET wrapped_key = NULL, "
                    "master_key_id = NULL, destroyed_at = COALESCE(k.destroyed_at, ?)"
                ),
                (case_id, destroyed_at, destroyed_at, destroyed_at),
            )
        self._after_destroy()

    def _before_destroy(self, curs: Any) -> None:
        """Dialect hook: run before the key is overwritten, in the same transaction."""

    def _after_destroy(self) -> None:
        """Dialect hook: run after the transaction that destroyed a key committed."""

    def wrapped_by_others(self, master_key_id: str, after: str, limit: int) -> list[KeyRow]:
        rows = self._execute(
            f"SELECT {_COLUMNS} FROM {{t}} WHERE wrapped_key IS NOT NULL "  # noqa: S608 -- constant names
            "AND master_key_id <> ? AND case_id > ? ORDER BY case_id LIMIT ?",
            (master_key_id, after, limit),
            commit=False,
        )
        return [_row(r) for r in rows]

    def rewrap(self, case_id: str, old_master_id: str, wrapped: bytes, master_key_id: str) -> bool:
        with self._cursor(commit=True) as curs:
            curs.execute(
                self._sql(
                    "UPDATE {t} SET wrapped_key = ?, master_key_id = ? "
                    "WHERE case_id = ? AND master_key_id = ? AND wrapped_key IS NOT NULL"
                ),
                (wrapped, master_key_id, case_id, old_master_id),
            )
            return bool(curs.rowcount)


class SqliteKeyStore(_SqlKeyStore):
    """On SQLite: the same file as the events (WAL), secure_delete on when a key is destroyed."""

    def __init__(self, recorder: SQLiteApplicationRecorder) -> None:
        self.datastore = recorder.datastore
        self.table = TABLE

    @contextmanager
    def _cursor(self, *, commit: bool) -> Iterator[Any]:
        with self.datastore.transaction(commit=commit) as curs:
            yield curs.sqlite_cursor

    def create_table(self) -> None:
        self._execute(
            "CREATE TABLE IF NOT EXISTS {t} (case_id TEXT PRIMARY KEY, wrapped_key BLOB, "
            "master_key_id TEXT, created_at TEXT NOT NULL, destroyed_at TEXT)"
        )

    def _before_destroy(self, curs: Any) -> None:
        # Zero the freed bytes of the overwritten key in the page, not only unlink them.
        curs.execute("PRAGMA secure_delete = ON")

    def _after_destroy(self) -> None:
        # Best effort: move the page without the key into the main file and empty the WAL.
        with self.datastore.get_connection(commit=True) as conn:
            conn.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)")


class PostgresKeyStore(_SqlKeyStore):
    """On PostgreSQL: a table in the event store's schema."""

    placeholder = "%s"

    def __init__(self, recorder: PostgresApplicationRecorder) -> None:
        self.datastore = recorder.datastore
        schema = self.datastore.schema.replace('"', "")
        self.table = f'"{schema}".{TABLE}'

    @contextmanager
    def _cursor(self, *, commit: bool) -> Iterator[Any]:
        with self.datastore.transaction(commit=commit) as curs:
            yield curs

    def create_table(self) -> None:
        self._execute(
            "CREATE TABLE IF NOT EXISTS {t} (case_id TEXT PRIMARY KEY, wrapped_key BYTEA, "
            "master_key_id TEXT, created_at TEXT NOT NULL, destroyed_at TEXT)"
        )


def keystore_for(recorder: ApplicationRecorder) -> KeyStore:
    """The key store on the database of the application's recorder."""
    store: KeyStore
    if isinstance(recorder, SQLiteApplicationRecorder):
        store = SqliteKeyStore(recorder)
    elif isinstance(recorder, PostgresApplicationRecorder):
        store = PostgresKeyStore(recorder)
    else:
        raise TypeError(f"no key store for {type(recorder).__name__}")
    store.create_table()
    return store
