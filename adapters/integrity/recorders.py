"""Application recorders that chain each stored event to the previous event of its stream.

Selected through eventsourcing's APPLICATION_RECORDER_TOPIC (see `adapters.store`). The chain is
computed inside the insert transaction, once no other writer can append:

* PostgreSQL: after `LOCK TABLE … IN EXCLUSIVE MODE`, which eventsourcing takes anyway, so every
  append is serialised and the previous row read here is the one the new row follows. A batch
  whose every link is remembered (see below) reads no row: it goes in as one statement, a
  function created with the table that takes the same lock, notifies and inserts;
* SQLite: in a `BEGIN IMMEDIATE` transaction, which holds SQLite's single write lock from the
  start (a deferred transaction could read a row and then fail to upgrade).

For each event of a batch in order, the previous event is the one just before it in the same
batch, else the stored row (stream, version - 1) read in the transaction. Version 1 follows 32
zero bytes. A missing previous row (a damaged log) also yields zeros; the verifier reports the
gap. A recorder remembers the hash of the last event of each stream it committed itself
(`ChainMemory`): stored rows never change, so when it appends the next version it links to that
hash without reading the row again (and a row edited meanwhile shows as a broken link, where a
fresh read would have chained to the edit).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import (
    InterfaceError,
    OperationalError,
    ProgrammingError,
    StoredEvent,
)
from eventsourcing.postgres import PostgresAggregateRecorder, PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor, SQLiteTransaction
from eventsourcing.utils import retry
from psycopg.errors import PipelineAborted, ReadOnlySqlTransaction, UndefinedFunction
from psycopg.sql import SQL, Composable, Composed, Identifier, Literal

from adapters.integrity.chain import ZERO_HASH, event_hash, with_header

log = logging.getLogger(__name__)

StreamKey = tuple[UUID | str, int]
PreviousRows = Callable[[list[StreamKey]], dict[StreamKey, tuple[str, bytes]]]


class ChainMemory:
    """The hash of the last event this process committed, per stream (at most `size`)."""

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._last: OrderedDict[UUID | str, tuple[int, bytes]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: StreamKey) -> bytes | None:
        found = self._last.get(key[0])
        return found[1] if found is not None and found[0] == key[1] else None

    def committed(self, hashes: Mapping[StreamKey, bytes]) -> None:
        """Remember a committed batch's hashes (call only once the transaction committed)."""
        with self._lock:
            for (stream, version), digest in hashes.items():
                last = self._last.get(stream)
                if last is None or last[0] < version:
                    self._last[stream] = (version, digest)
                    self._last.move_to_end(stream)
            while len(self._last) > self.size:
                self._last.popitem(last=False)


def chain_batch(
    stored_events: Sequence[StoredEvent],
    previous: PreviousRows,
    memory: ChainMemory | None = None,
) -> tuple[list[StoredEvent], dict[StreamKey, bytes]]:
    """The batch with chain headers, and each event's hash; `previous` reads stored
    (topic, state) rows by key, for links neither in the batch nor in `memory`."""
    in_batch = {(s.originator_id, s.originator_version) for s in stored_events}
    hashes: dict[StreamKey, bytes] = {}
    needed: list[StreamKey] = []
    for s in stored_events:
        before = (s.originator_id, s.originator_version - 1)
        if s.originator_version <= 1 or before in in_batch:
            continue
        remembered = memory.get(before) if memory is not None else None
        if remembered is not None:
            hashes[before] = remembered
        else:
            needed.append(before)
    stored = previous(needed) if needed else {}
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
    return chained, hashes


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

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.chain_memory = ChainMemory()
        self._batch = threading.local()

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        with (
            self.datastore.get_connection(commit=True) as conn,
            _ImmediateTransaction(conn, commit=True) as curs,
            curs,
        ):
            ids = self._insert_events(curs, stored_events, **kwargs)
        self.chain_memory.committed(self._batch.hashes)
        return ids

    def _insert_events(
        self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        chained, self._batch.hashes = chain_batch(
            stored_events, lambda keys: self._previous(c, keys), self.chain_memory
        )
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
        self.chain_memory = ChainMemory()
        self._batch = threading.local()
        if self.datastore.enable_db_functions:
            raise ValueError("POSTGRES_ENABLE_DB_FUNCTIONS must stay off: it skips the chain")
        self.select_previous_statement = rendered(
            SQL(
                "SELECT originator_id, originator_version, topic, state FROM {schema}.{table} "
                "WHERE (originator_id, originator_version) IN "
                "(SELECT * FROM unnest(%s::{id_type}[], %s::bigint[]))"
            ).format(
                schema=Identifier(self.datastore.schema),
                table=Identifier(self.events_table_name),
                id_type=Identifier(self.datastore.originator_id_type),
            )
        )
        # Every append and every read of a stream runs these: rendered once, not per execute.
        self.insert_events_statement = rendered(self.insert_events_statement)
        self.max_notification_id_statement = rendered(self.max_notification_id_statement)
        self.lock_table_statements = [
            rendered(s) if isinstance(s, Composable) else s for s in self.lock_table_statements
        ]
        self.notify_statement = rendered(SQL("NOTIFY {0}").format(Identifier(self.channel_name)))
        self._select_events_statements: dict[tuple[bool, bool, bool, bool], Composed] = {}
        function = Identifier(self.datastore.schema, f"{self.events_table_name}_append")
        id_type = Identifier(self.datastore.originator_id_type)
        self.sql_create_statements.append(
            SQL(
                "CREATE OR REPLACE FUNCTION {function}("
                "ids {id_type}[], versions bigint[], topics text[], states bytea[]) "
                "RETURNS SETOF bigint LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp "
                "AS $body$ BEGIN "
                "SET LOCAL lock_timeout = {timeout}; "
                "LOCK TABLE {table} IN EXCLUSIVE MODE; "
                "PERFORM pg_catalog.pg_notify({channel}, ''); "
                "RETURN QUERY INSERT INTO {table} "
                "(originator_id, originator_version, topic, state) "
                "SELECT * FROM unnest(ids, versions, topics, states) "
                "RETURNING notification_id; "
                "END $body$"
            ).format(
                function=function,
                id_type=id_type,
                timeout=Literal(f"{self.datastore.lock_timeout}s"),
                table=Identifier(self.datastore.schema, self.events_table_name),
                channel=Literal(self.channel_name),
            )
        )
        self.append_statement = rendered(
            SQL(
                "SELECT appended FROM {function}("
                "%s::{id_type}[], %s::bigint[], %s::text[], %s::bytea[]) AS appended"
            ).format(function=function, id_type=id_type)
        )
        self._append_function_missing = False
        self.appended_in_one_statement = 0
        """How many batches went in as one statement (the rest took the locked read)."""

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        self._batch.hashes = {}
        try:
            ids: Sequence[int] | None = self._insert_in_one_statement(stored_events)
            if ids is None:
                ids = self._insert_in_one_round_trip(stored_events, **kwargs)
        except OperationalError as exc:
            if _pipeline_aborted(exc) and self._in_recovery():
                raise ReadOnlySqlTransaction(
                    "this node is a hot standby: appends go to the primary"
                ) from exc
            raise
        self.chain_memory.committed(self._batch.hashes)
        return ids

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def _insert_in_one_statement(self, stored_events: Sequence[StoredEvent]) -> list[int] | None:
        """The append as one statement, when every link of the chain is remembered: the
        function created with the table (`{table}_append`) takes the table lock, notifies and
        inserts, in the statement's own transaction. None (nothing done) when a previous row
        must be read under the lock (`_insert_in_one_round_trip` does that), or when the
        database predates the function.

        One statement instead of six (BEGIN, SET LOCAL, LOCK, NOTIFY, INSERT, COMMIT): each
        costs this process a send and the pipeline's bookkeeping while it holds the
        interpreter lock, and the table lock is still held only while PostgreSQL runs it.
        """
        if not stored_events or self._append_function_missing:
            return None
        try:
            chained, hashes = chain_batch(stored_events, _not_remembered, self.chain_memory)
        except _LinkNotRememberedError:
            return None
        try:
            with self.datastore.get_connection() as conn, conn.cursor() as curs:
                curs.execute(
                    self.append_statement,
                    (
                        [s.originator_id for s in chained],
                        [s.originator_version for s in chained],
                        [s.topic for s in chained],
                        [s.state for s in chained],
                    ),
                    prepare=True,
                )
                ids = [row["appended"] for row in curs.fetchall()]
        except ProgrammingError as exc:
            if not isinstance(exc.__cause__, UndefinedFunction):
                raise
            self._append_function_missing = True  # tables made by an earlier version
            log.warning("the append function is missing: appends take the pipelined transaction")
            return None
        if len(ids) != len(chained):
            raise ProgrammingError(f"{len(ids)} notification ids for {len(chained)} events")
        self._batch.hashes = hashes
        self.appended_in_one_statement += 1
        return ids

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def _insert_in_one_round_trip(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        """eventsourcing's insert (table lock, NOTIFY, INSERT … RETURNING), with the COMMIT sent
        in the same pipeline: the table lock is held while PostgreSQL runs the batch, not also
        while this process gets back to it (a round trip, and a wait for the interpreter lock
        that another thread of the process may hold) to send the COMMIT. Every append waits
        for that lock, so in two processes its holding time was their throughput.

        A duplicate (case, version) fails the INSERT; the COMMIT after it in the pipeline is
        then not run, and the error (IntegrityError) is raised when the pipeline is synced.
        """
        if not stored_events:
            return None
        with self.datastore.get_connection() as conn:
            curs = conn.cursor()
            try:
                with conn.pipeline(), conn.transaction():
                    self._insert_stored_events(curs, stored_events, **kwargs)
                ids: Sequence[int] | None = self._fetch_ids_after_insert_events(
                    curs, stored_events, **kwargs
                )
            finally:
                curs.close()
        return ids

    def _in_recovery(self) -> bool:
        """Whether the database is a hot standby (asked only after a failed append)."""
        try:
            with self.datastore.get_connection() as conn, conn.cursor() as curs:
                curs.execute("SELECT pg_is_in_recovery() AS standby")
                row = curs.fetchone()
        except Exception:  # noqa: BLE001 -- unknown: the original error stands
            return False
        return bool(row and row["standby"])

    def _notify_channel(self, curs: Any) -> None:
        curs.execute(self.notify_statement)

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def select_events(
        self,
        originator_id: UUID | str,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> Sequence[StoredEvent]:
        """As eventsourcing's, with each shape of the query rendered once (see `rendered`)."""
        statement = self._select_events_statement(gt is not None, lte is not None, desc, limit)
        params = [originator_id, *(p for p in (gt, lte, limit) if p is not None)]
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(statement, params, prepare=True)
            return [
                StoredEvent(
                    originator_id=row["originator_id"],
                    originator_version=row["originator_version"],
                    topic=row["topic"],
                    state=bytes(row["state"]),
                )
                for row in curs.fetchall()
            ]

    def _select_events_statement(
        self, gt: bool, lte: bool, desc: bool, limit: int | None
    ) -> Composed:
        shape = (gt, lte, desc, limit is not None)
        statement = self._select_events_statements.get(shape)
        if statement is None:
            parts: list[Composable] = [self.select_events_statement]
            if gt:
                parts.append(SQL(" AND originator_version > %s"))
            if lte:
                parts.append(SQL(" AND originator_version <= %s"))
            parts.append(
                SQL(
                    " ORDER BY originator_version DESC"
                    if desc
                    else " ORDER BY originator_version ASC"
                )
            )
            if limit is not None:
                parts.append(SQL(" LIMIT %s"))
            statement = rendered(Composed(parts))
            self._select_events_statements[shape] = statement
        return statement

    def _insert_stored_events(
        self, curs: Any, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> None:
        self._lock_table(curs)
        self._notify_channel(curs)
        chained, self._batch.hashes = chain_batch(
            stored_events, lambda keys: self._previous(curs, keys), self.chain_memory
        )
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


class _LinkNotRememberedError(Exception):
    """A batch links to a stored row this process does not remember: it must be read under
    the table lock."""


def _not_remembered(keys: list[StreamKey]) -> dict[StreamKey, tuple[str, bytes]]:
    raise _LinkNotRememberedError(keys)


def rendered(statement: Composable) -> Composed:
    """The statement as one fixed piece of SQL text.

    psycopg renders a composed statement (identifiers quoted, pieces joined) on every execute:
    for an append's five statements and a read's one, that was about 4% of a request's CPU in
    the API (yappi, bench http). Our identifiers (schema, table, type names) do not depend on
    the connection, so rendering them once gives the same text.
    """
    return Composed([SQL(statement.as_string(None))])


def _pipeline_aborted(exc: BaseException) -> bool:
    """Whether an append failed as an aborted pipeline: the statement that failed first (on a
    hot standby, the table lock: read-only, SQLSTATE 25006) can then go unreported, depending
    on when its result arrived, and only "pipeline aborted" reaches us."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, PipelineAborted):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


SQLITE_RECORDER_TOPIC = f"{__name__}:ChainedSQLiteRecorder"
POSTGRES_RECORDER_TOPIC = f"{__name__}:ChainedPostgresRecorder"
