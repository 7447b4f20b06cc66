"""Shredding what outlives a case key: the case's snapshots, and SQLite's old page copies."""

from __future__ import annotations

from uuid import UUID

from eventsourcing.persistence import AggregateRecorder
from eventsourcing.postgres import PostgresAggregateRecorder
from eventsourcing.sqlite import SQLiteAggregateRecorder
from psycopg.sql import SQL, Identifier


def delete_snapshots(recorder: AggregateRecorder, case_id: UUID) -> None:
    """Delete every snapshot of one aggregate from the snapshot store's table."""
    if isinstance(recorder, SQLiteAggregateRecorder):
        with recorder.datastore.transaction(commit=True) as curs:
            curs.execute(
                f"DELETE FROM {recorder.events_table_name} WHERE originator_id = ?",  # noqa: S608
                (case_id.hex,),
            )
        return
    if isinstance(recorder, PostgresAggregateRecorder):
        statement = SQL("DELETE FROM {schema}.{table} WHERE originator_id = %s").format(
            schema=Identifier(recorder.datastore.schema),
            table=Identifier(recorder.events_table_name),
        )
        with recorder.datastore.transaction(commit=True) as curs:
            curs.execute(statement, (case_id,))
        return
    raise TypeError(f"cannot delete snapshots from {type(recorder).__name__}")


def checkpoint_wal(recorder: AggregateRecorder) -> None:
    """SQLite: copy the WAL into the database file and empty it (best effort), so pages
    overwritten by an erasure leave no older copy in the WAL. PostgreSQL: nothing to do here."""
    if isinstance(recorder, SQLiteAggregateRecorder):
        with recorder.datastore.get_connection(commit=True) as conn:
            conn.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)")
