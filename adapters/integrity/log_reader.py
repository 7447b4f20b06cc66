"""Read the events table as stored, straight from the database: no mapper, no decryption.

Pages through the log by position in short read transactions on the event store's own
connections (on SQLite a deferred transaction, so reading never takes the write lock).
"""

from __future__ import annotations

from collections.abc import Iterator
from uuid import UUID

from eventsourcing.persistence import ApplicationRecorder
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Identifier

from adapters.integrity.verify import EventRow

PAGE = 10_000


def read_page(recorder: ApplicationRecorder, after: int, limit: int) -> list[EventRow]:
    """Up to `limit` events with positions above `after`, in log order."""
    if isinstance(recorder, SQLiteApplicationRecorder):
        statement = (
            "SELECT rowid, originator_id, originator_version, topic, state "  # noqa: S608
            f"FROM {recorder.events_table_name} WHERE rowid > ? ORDER BY rowid LIMIT ?"
        )
        with recorder.datastore.transaction(commit=False) as curs:
            raw = curs.sqlite_cursor
            raw.execute(statement, (after, limit))
            return [EventRow(r[0], r[1], r[2], r[3], r[4]) for r in raw.fetchall()]
    if isinstance(recorder, PostgresApplicationRecorder):
        query = SQL(
            "SELECT notification_id, originator_id, originator_version, topic, state "
            "FROM {schema}.{table} WHERE notification_id > %s ORDER BY notification_id LIMIT %s"
        ).format(
            schema=Identifier(recorder.datastore.schema),
            table=Identifier(recorder.events_table_name),
        )
        with (
            recorder.datastore.get_connection() as conn,
            conn.transaction(),
            conn.cursor(row_factory=tuple_row) as cur,
        ):
            cur.execute(query, (after, limit), prepare=True)
            return [EventRow(r[0], r[1], r[2], r[3], r[4]) for r in cur.fetchall()]
    raise TypeError(f"cannot read events from {type(recorder).__name__}")


def iter_events(
    recorder: ApplicationRecorder, *, upto: int | None = None, page: int = PAGE
) -> Iterator[EventRow]:
    """Every event in log order (up to position `upto` when given)."""
    after = 0
    while True:
        rows = read_page(recorder, after, page)
        for row in rows:
            if upto is not None and row.position > upto:
                return
            yield row
        if len(rows) < page:
            return
        after = rows[-1].position


def stream_events(recorder: ApplicationRecorder, stream: UUID) -> list[EventRow]:
    """Every stored event of one stream, by version, with its log position."""
    if isinstance(recorder, SQLiteApplicationRecorder):
        statement = (
            "SELECT rowid, originator_id, originator_version, topic, state "  # noqa: S608
            f"FROM {recorder.events_table_name} WHERE originator_id = ? "
            "ORDER BY originator_version"
        )
        with recorder.datastore.transaction(commit=False) as curs:
            raw = curs.sqlite_cursor
            raw.execute(statement, (stream.hex,))
            return [EventRow(r[0], r[1], r[2], r[3], r[4]) for r in raw.fetchall()]
    if isinstance(recorder, PostgresApplicationRecorder):
        query = SQL(
            "SELECT notification_id, originator_id, originator_version, topic, state "
            "FROM {schema}.{table} WHERE originator_id = %s ORDER BY originator_version"
        ).format(
            schema=Identifier(recorder.datastore.schema),
            table=Identifier(recorder.events_table_name),
        )
        with (
            recorder.datastore.get_connection() as conn,
            conn.transaction(),
            conn.cursor(row_factory=tuple_row) as cur,
        ):
            cur.execute(query, (stream,))
            return [EventRow(r[0], r[1], r[2], r[3], r[4]) for r in cur.fetchall()]
    raise TypeError(f"cannot read events from {type(recorder).__name__}")


def stream_ends(recorder: ApplicationRecorder, upto: int) -> dict[UUID, int]:
    """The position of each stream's last event at or before position `upto`, in one query."""
    if isinstance(recorder, SQLiteApplicationRecorder):
        statement = (
            "SELECT originator_id, MAX(rowid) "  # noqa: S608
            f"FROM {recorder.events_table_name} WHERE rowid <= ? GROUP BY originator_id"
        )
        with recorder.datastore.transaction(commit=False) as curs:
            raw = curs.sqlite_cursor
            raw.execute(statement, (upto,))
            return {UUID(r[0]): int(r[1]) for r in raw.fetchall()}
    if isinstance(recorder, PostgresApplicationRecorder):
        query = SQL(
            "SELECT originator_id, MAX(notification_id) FROM {schema}.{table} "
            "WHERE notification_id <= %s GROUP BY originator_id"
        ).format(
            schema=Identifier(recorder.datastore.schema),
            table=Identifier(recorder.events_table_name),
        )
        with (
            recorder.datastore.get_connection() as conn,
            conn.transaction(),
            conn.cursor(row_factory=tuple_row) as cur,
        ):
            cur.execute(query, (upto,))
            return {r[0]: int(r[1]) for r in cur.fetchall()}
    raise TypeError(f"cannot read events from {type(recorder).__name__}")
