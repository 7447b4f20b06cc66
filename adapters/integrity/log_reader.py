"""Read the events table as stored, straight from the database: no mapper, no decryption.

Pages through the log by position in short read transactions on the event store's own
connections (on SQLite a deferred transaction, so reading never takes the write lock).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import UUID

from eventsourcing.persistence import ApplicationRecorder, Notification
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Identifier

from adapters.integrity.verify import EventRow

PAGE = 10_000


def _select(
    recorder: ApplicationRecorder, query: str, params: tuple[Any, ...], *, prepare: bool = False
) -> list[tuple[Any, ...]]:
    """The rows of a read-only query on the events table, on either store, in a short read
    transaction. In `query`, `{table}` stands for the table and `{position}` for its log
    position column (`rowid` on SQLite, `notification_id` on PostgreSQL); parameters are `%s`.
    """
    if isinstance(recorder, SQLiteApplicationRecorder):
        statement = query.format(table=recorder.events_table_name, position="rowid").replace(
            "%s", "?"
        )
        with recorder.datastore.transaction(commit=False) as curs:
            raw = curs.sqlite_cursor
            raw.execute(statement, params)
            return list(raw.fetchall())
    if isinstance(recorder, PostgresApplicationRecorder):
        composed = SQL(query).format(
            table=Identifier(recorder.datastore.schema, recorder.events_table_name),
            position=Identifier("notification_id"),
        )
        with (
            recorder.datastore.get_connection() as conn,
            conn.transaction(),
            conn.cursor(row_factory=tuple_row) as cur,
        ):
            cur.execute(composed, params, prepare=prepare)
            return cur.fetchall()
    raise TypeError(f"cannot read events from {type(recorder).__name__}")


_PAGE = (
    "SELECT {position}, originator_id, originator_version, topic, state FROM {table} "
    "WHERE {position} > %s ORDER BY {position} LIMIT %s"
)


def read_page(recorder: ApplicationRecorder, after: int, limit: int) -> list[EventRow]:
    """Up to `limit` events with positions above `after`, in log order."""
    rows = _select(recorder, _PAGE, (after, limit), prepare=True)
    return [EventRow(r[0], r[1], r[2], r[3], r[4]) for r in rows]


def notifications(recorder: ApplicationRecorder, after: int, limit: int) -> list[Notification]:
    """What `recorder.select_notifications(start=after, limit=limit, inclusive_of_start=False)`
    returns, from tuple rows (on PostgreSQL a third faster than the recorder's dict rows)."""
    rows = _select(recorder, _PAGE, (after, limit), prepare=True)
    sqlite = isinstance(recorder, SQLiteApplicationRecorder)
    return [
        Notification(
            id=r[0],
            originator_id=UUID(r[1]) if sqlite else r[1],
            originator_version=r[2],
            topic=r[3],
            state=bytes(r[4]),
        )
        for r in rows
    ]


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
    rows = _select(
        recorder,
        "SELECT {position}, originator_id, originator_version, topic, state FROM {table} "
        "WHERE originator_id = %s ORDER BY originator_version",
        (_stream_id(recorder, stream),),
    )
    return [EventRow(r[0], r[1], r[2], r[3], r[4]) for r in rows]


def stream_ends(recorder: ApplicationRecorder, upto: int) -> dict[UUID, int]:
    """The position of each stream's last event at or before position `upto`, in one query."""
    rows = _select(
        recorder,
        "SELECT originator_id, MAX({position}) FROM {table} WHERE {position} <= %s "
        "GROUP BY originator_id",
        (upto,),
    )
    return {r[0] if isinstance(r[0], UUID) else UUID(r[0]): int(r[1]) for r in rows}


def _stream_id(recorder: ApplicationRecorder, stream: UUID) -> UUID | str:
    """A stream id as the store keeps it (SQLite: hex text)."""
    return stream.hex if isinstance(recorder, SQLiteApplicationRecorder) else stream
