"""Application recorders that chain each stored event to the previous event of its stream.

Selected through eventsourcing's APPLICATION_RECORDER_TOPIC (see `adapters.store`). The chain is
computed inside the insert transaction, once no other writer can append:

* PostgreSQL: after `LOCK TABLE … IN EXCLUSIVE MODE`, which eventsourcing takes anyway, so every
  append is serialised and the previous row read here is the one the new row follows;
* SQLite: in a `BEGIN IMMEDIATE` transaction, which holds SQLite's single write lock from the
  start (a deferred transaction could read a row and then fail to upgrade).

For each event of a batch in order, the previous event is the one just before it in the same
batch, else the stored row (stream, version - 1). Version 1 follows 32 zero bytes. A missing
previous row (a damaged log) also yields zeros; the verifier reports the gap.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import OperationalError, StoredEvent
from eventsourcing.postgres import PostgresAggregateRecorder, PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor, SQLiteTransaction
from psycopg.sql import SQL, Identifier

from adapters.integrity.chain import ZERO_HASH, event_hash, with_header

StreamKey = tuple[UUID | str, int]
PreviousRows = Callable[[list[StreamKey]], dict[StreamKey, tuple[str, bytes]]]


def chain_batch(stored_events: Sequence[StoredEvent], previous: PreviousRows) -> list[StoredEvent]:
    """The batch with chain headers; `previous` reads stored (topic, state) rows by key."""
    in_batch = {(s.originator_id, s.originator_version) for s in stored_events}
    needed = [
        (s.originator_id, s.originator_version - 1)
        for s in stored_events
        if s.originator_version > 1 and (s.originator_id, s.originator_version - 1) not in in_batch
    ]
    stored = previous(needed) if needed else {}
    hashes: dict[StreamKey, bytes] = {}
    chained: list[StoredEvent] = []
    for s in stored_events:
        before = (s.originator_id, s.originator_version - 1)
        if s.originator_version <= 1:
            prev = ZERO_HASH
        elif before in hashes:
            prev = hashes[before]
        elif before in stored:
            topic, state = stored[before]
            prev = event_hash(s.originator_id, s.originator_version - 1, topic, state)
        else:
            prev = ZERO_HASH
        state = with_header(prev, s.state)
        hashes[(s.originator_id, s.originator_version)] = event_hash(
            s.originator_id, s.originator_version, s.topic, state
        )
        chained.append(
            StoredEvent(
                originator_id=s.originator_id,
                originator_version=s.originator_version,
                topic=s.topic,
                state=state,
            )
        )
    return chained


# -- SQLite ---------------------------------------------------------------------------------------


class _ImmediateTransaction(SQLiteTransaction):
    """A transaction that takes SQLite's write lock when it begins."""

    def __enter__(self) -> SQLiteCursor:
        cursor = self.connection.cursor()
        try:
            cursor.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise OperationalError(exc) from exc
        return cursor


class ChainedSQLiteRecorder(SQLiteApplicationRecorder):
    """SQLite's application recorder, chaining every stored event under the write lock."""

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        with (
            self.datastore.get_connection(commit=True) as conn,
            _ImmediateTransaction(conn, commit=True) as curs,
            curs,
        ):
            return self._insert_events(curs, stored_events, **kwargs)

    def _insert_events(
        self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        chained = chain_batch(stored_events, lambda keys: self._previous(c, keys))
        return super()._insert_events(c, chained, **kwargs)

    def _previous(
        self, c: SQLiteCursor, keys: list[StreamKey]
    ) -> dict[StreamKey, tuple[str, bytes]]:
        found: dict[StreamKey, tuple[str, bytes]] = {}
        statement = (
            f"SELECT topic, state FROM {self.events_table_name} "  # noqa: S608 -- our table name
            "WHERE originator_id = ? AND originator_version = ?"
        )
        for originator_id, version in keys:
            stored_id = originator_id.hex if isinstance(originator_id, UUID) else originator_id
            c.execute(statement, (stored_id, version))
            row = c.fetchone()
            if row is not None:
                found[(originator_id, version)] = (row["topic"], bytes(row["state"]))
        return found


# -- PostgreSQL -----------------------------------------------------------------------------------


class ChainedPostgresRecorder(PostgresApplicationRecorder):
    """PostgreSQL's application recorder, chaining every stored event after the table lock."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.datastore.enable_db_functions:
            raise ValueError("POSTGRES_ENABLE_DB_FUNCTIONS must stay off: it skips the chain")
        self.select_previous_statement = SQL(
            "SELECT originator_id, originator_version, topic, state FROM {schema}.{table} "
            "WHERE (originator_id, originator_version) IN "
            "(SELECT * FROM unnest(%s::{id_type}[], %s::bigint[]))"
        ).format(
            schema=Identifier(self.datastore.schema),
            table=Identifier(self.events_table_name),
            id_type=Identifier(self.datastore.originator_id_type),
        )

    def _insert_stored_events(
        self, curs: Any, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> None:
        self._lock_table(curs)
        self._notify_channel(curs)
        chained = chain_batch(stored_events, lambda keys: self._previous(curs, keys))
        PostgresAggregateRecorder._insert_stored_events(self, curs, chained, **kwargs)

    def _previous(self, curs: Any, keys: list[StreamKey]) -> dict[StreamKey, tuple[str, bytes]]:
        curs.execute(
            self.select_previous_statement,
            ([k[0] for k in keys], [k[1] for k in keys]),
        )
        by_text = {(str(k[0]), k[1]): k for k in keys}
        found: dict[StreamKey, tuple[str, bytes]] = {}
        for row in curs.fetchall():
            key = by_text.get((str(row["originator_id"]), row["originator_version"]))
            if key is not None:
                found[key] = (row["topic"], bytes(row["state"]))
        return found


SQLITE_RECORDER_TOPIC = f"{__name__}:ChainedSQLiteRecorder"
POSTGRES_RECORDER_TOPIC = f"{__name__}:ChainedPostgresRecorder"
