"""Keep read models current from the global log, exactly once.

Each batch runs in one database transaction that applies the changes and moves the read model's
position, so a crash leaves either both or neither. On PostgreSQL a transaction-scoped advisory
lock per read model keeps two workers from processing the same read model at once; on SQLite the
write lock does the same. Case states are kept in a small LRU and advanced event by event, so a
rebuild reads the log once instead of loading a case per event. A rebuild on PostgreSQL may share
its cases out among processes (`projections.rebuild_parts`); after a rebuild or a long catch-up
the runner refreshes its tables (`refresh_statistics`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from projections.base import Change, Projection
from projections.collector import fewer_collections
from projections.db import PostgresDatabase, SqliteDatabase, Tx
from referral_core.application import ReferralApplication
from referral_core.case import Case, CaseEvent
from referral_core.case_events import TOPIC_PREFIX

log = logging.getLogger(__name__)

TRACKING_TABLE = "projection_position"
REBUILD_SUFFIX = "_rebuild"
DEFAULT_BATCH = 500
"""Log entries per batch on SQLite, whose one write lock a batch holds against every append."""
POSTGRES_BATCH = 2000
"""Log entries per batch on PostgreSQL: a batch blocks no append there, and a catch-up or a
rebuild spends less on the fixed statements of each batch (measured: 500 -> 2000, ~40% faster)."""


CATCH_UP_BATCH = 20_000
"""The most a PostgreSQL batch grows to while the runner is behind (each full batch doubles the
next): a case touched by a batch has all its rows rewritten, so the fewer batches a long case
spans, the less a catch-up or a rebuild writes (measured at 120,000 events: 2,000 -> 20,000
rebuilt 1.7x faster). Live batches, a few events each, are not affected."""


def default_batch(db: SqliteDatabase | PostgresDatabase) -> int:
    return POSTGRES_BATCH if isinstance(db, PostgresDatabase) else DEFAULT_BATCH


def ensure_tracking(tx: Tx) -> None:
    tx.execute(
        f"CREATE TABLE IF NOT EXISTS {TRACKING_TABLE} ("
        "name TEXT PRIMARY KEY, position BIGINT NOT NULL, updated_at DOUBLE PRECISION NOT NULL)"
    )


def read_position(tx: Tx, name: str) -> int:
    row = tx.fetchone(f"SELECT position FROM {TRACKING_TABLE} WHERE name = ?", (name,))
    return 0 if row is None else int(row[0])


def read_positions(tx: Tx, names: Sequence[str]) -> dict[str, int]:
    """Each name's position (0 if it has none), in one statement."""
    marks = ", ".join("?" * len(names))
    rows = tx.fetchall(
        f"SELECT name, position FROM {TRACKING_TABLE} WHERE name IN ({marks})", tuple(names)
    )
    found = {str(name): int(position) for name, position in rows}
    return {name: found.get(name, 0) for name in names}


def write_position(tx: Tx, name: str, position: int) -> None:
    write_positions(tx, [name], position)


def write_positions(tx: Tx, names: Sequence[str], position: int) -> None:
    """Move every named read model to `position`, in one statement."""
    now = time.time()
    marks = ", ".join("(?, ?, ?)" for _ in names)
    params = [value for name in names for value in (name, position, now)]
    tx.execute(
        f"INSERT INTO {TRACKING_TABLE} (name, position, updated_at) VALUES {marks} "
        "ON CONFLICT (name) DO UPDATE SET position = excluded.position, "
        "updated_at = excluded.updated_at",
        params,
    )


def delete_position(tx: Tx, name: str) -> None:
    tx.execute(f"DELETE FROM {TRACKING_TABLE} WHERE name = ?", (name,))


def _after(changes: list[Change], behind: int) -> list[Change]:
    """The changes a read model at position `behind` has not handled yet.

    A case the batch opened at or before `behind` has rows already: its later changes no longer
    say the batch opened it. (Read models move together, so this is nearly always the batch.)
    """
    if not changes or changes[0].position > behind:
        return changes
    return [
        c
        if c.opened_at is None or c.opened_at > behind
        else Change(c.position, c.event, c.case, c.notification)
        for c in changes
        if c.position > behind
    ]


def _final_only(changes: list[Change], final: dict[UUID, int]) -> list[Change]:
    """What a keyed read model needs of a rebuild's batch: each case's last change up to the
    rebuild's plan, whatever came after the plan, and every change that is not a case's.

    The rows of a keyed read model are a function of the case after a change and of that
    change (`Projection.keyed_by_case`); for one that wants every change, those written at a
    case's last change are the rows handling every change in turn ends with.
    """
    kept: list[Change] = []
    for change in changes:
        event = change.case_event
        if event is None or change.position >= final.get(event.originator_id, 0):
            kept.append(change)
    return kept


def _rows_follow_the_case(projection: Projection) -> bool:
    """Keyed, wanting every change, picking them as the base does: its rows after a case's
    last change are final, and it picks the same changes as every other such read model.
    (One that skips changes would have written its last rows at an earlier change.)"""
    kind = type(projection)
    return (
        projection.keyed_by_case
        and kind.wants is Projection.wants
        and kind.relevant is Projection.relevant
    )


MAINTAIN_AFTER = 50_000
"""Log entries a runner applies before it refreshes its tables itself (`refresh_statistics`).

A rebuild's tables, and tables a catch-up rewrote, have no planner statistics and many dead row
versions until autovacuum gets to them (never, where it is off): the planner then guesses a few
rows per agency and sorts every case of a busy agency for an inbox (measured at 6,941 rows: 5-7
ms a list, with statistics 0.1 ms), and each index scan wades through the dead versions."""


def refresh_statistics(
    db: SqliteDatabase | PostgresDatabase, projections: Sequence[Projection], suffix: str = ""
) -> None:
    """Refresh the read models' tables: VACUUM (ANALYZE) on PostgreSQL, ANALYZE on SQLite."""
    db.refresh_statistics([table + suffix for p in projections for table in p.tables])


def advisory_key(name: str) -> int:
    """A stable 63-bit key for a read model's advisory lock."""
    return int.from_bytes(hashlib.sha256(f"referral:{name}".encode()).digest()[:8], "big") >> 1


PIPELINED = True
"""Batches write rows by COPY, which PostgreSQL's pipeline mode cannot do (measured faster)."""
SWAP_LOCK = "rebuild-swap"
"""The lock a rebuild's swap takes exclusively and every batch takes shared."""


def lock_key(db: SqliteDatabase | PostgresDatabase, name: str) -> int:
    """Advisory locks are per database: the schema keeps two deployments apart."""
    schema = db.schema if isinstance(db, PostgresDatabase) else ""
    return advisory_key(f"{schema}:{name}")


CASE_STATES = 8192
"""Cases a runner keeps folded while tailing the log (~17 KB each at ~19 events)."""
REBUILD_CASE_STATES = 100_000
"""The most a rebuild, or a PostgreSQL runner catching up, keeps folded: a case's events are
spread over the whole log, so a runner keeping fewer cases than are open at once loads most
cases again from the store, event after event (measured: 54,000 cases over 1,000,000 events
rebuilt at ~600 events/s with 8,192). A rebuild also lets go of each case at its last event up
to where it began; a runner back to tailing the log goes back to `CASE_STATES`."""


class CaseStates:
    """The last few cases' states, advanced one event at a time; reloaded on a gap."""

    def __init__(self, app: ReferralApplication, size: int | None = None) -> None:
        self.app = app
        self.size = CASE_STATES if size is None else size
        self._cases: OrderedDict[UUID, Case] = OrderedDict()

    def resize(self, size: int) -> None:
        """Keep at most `size` cases from now on (the least recently advanced go first)."""
        self.size = size
        while len(self._cases) > size:
            self._cases.popitem(last=False)

    def drop(self, case_id: UUID) -> None:
        """Let go of a case (it is loaded again if it has another event)."""
        self._cases.pop(case_id, None)

    def advance(self, event: CaseEvent) -> Case:
        case_id = event.originator_id
        case = self._cases.pop(case_id, None)
        if case is None or case.version != event.originator_version - 1:
            case = (
                None
                if event.originator_version == 1
                else self.app.get_case(case_id, version=event.originator_version - 1)
            )
        case = event.mutate(case)
        assert isinstance(case, Case)  # noqa: S101 -- a case event always yields a case
        self._cases[case_id] = case
        if len(self._cases) > self.size:
            self._cases.popitem(last=False)
        return case

    def forget(self) -> None:
        self._cases.clear()


@dataclass
class RunnerStats:
    position: int = 0
    processed: int = 0
    last_batch_at: float = 0.0


class ProjectionRunner:
    """Applies the log to a set of read models; one runner per process, any number of processes."""

    def __init__(
        self,
        app: ReferralApplication,
        db: SqliteDatabase | PostgresDatabase,
        projections: Sequence[Projection],
        *,
        batch_size: int | None = None,
        suffix: str = "",
        create_tables: bool = True,
    ) -> None:
        """`batch_size` None: `default_batch` for the database, growing while behind on
        PostgreSQL (`CATCH_UP_BATCH`); a number: always that many. `create_tables` false: the
        tables exist already (a hot standby serving reads)."""
        self.app = app
        self.db = db
        self.projections = list(projections)
        self.requested_batch = batch_size
        self.batch_size = default_batch(db) if batch_size is None else batch_size
        grows = batch_size is None and isinstance(db, PostgresDatabase)
        self.largest_batch = max(self.batch_size, CATCH_UP_BATCH) if grows else self.batch_size
        self.next_batch = self.batch_size
        self.behind = False
        """Whether the last batch was full (more of the log was waiting)."""
        self.unmaintained = 0
        """Log entries applied since this runner last refreshed its tables."""
        self.maintain_after = MAINTAIN_AFTER
        self.refreshing: threading.Thread | None = None
        """The thread refreshing the tables after a large catch-up, if one was started."""
        self.final: dict[UUID, int] | None = None
        """In a rebuild: each stream's last position when it began (`rebuild`). A keyed read
        model then writes a case's rows once, at its last change up to there, not at every
        batch its changes fall in (nobody reads the rebuild's tables before it ends)."""
        self.suffix = suffix
        self.tracking_suffix = suffix
        """Appended to each read model's name for its position (a rebuild's part: its own)."""
        self.partition: tuple[int, int] | None = None
        """In a rebuild shared among processes (`projections.rebuild_parts`): (this part,
        how many). A part folds and hands to its keyed read models only the case events of
        its cases; part 0 also every other event, and every change to the others."""
        self.stop: int | None = None
        """A position not to read past (a rebuild's part stops where the rebuild planned)."""
        self.states = CaseStates(app)
        self.decode = app.log_fold_decoder()
        self.decode_envelope = app.log_envelope_decoder()
        self.stats = {p.name: RunnerStats() for p in self.projections}
        self.nudge = threading.Event()
        if not create_tables:
            return
        with db.transaction() as tx:
            if isinstance(db, PostgresDatabase):  # two first starts at once: one at a time
                tx.execute("SELECT pg_advisory_xact_lock(?)", (lock_key(db, "create-tables"),))
            ensure_tracking(tx)
            for projection in self.projections:
                projection.create(tx, suffix)

    def tracking_name(self, projection: Projection) -> str:
        return projection.name + self.tracking_suffix

    @property
    def group(self) -> str:
        return ",".join(sorted(self.tracking_name(p) for p in self.projections))

    def run_once(self) -> int:
        """Apply one batch of the log to every read model behind; return the changes read."""
        with self.db.transaction() as tx:
            if not self._lock(tx):
                return 0
            done = self._apply_batch(tx)
        if done and self._maintenance_due(done):
            self._refresh_in_background()
        return done

    def _refresh_in_background(self) -> None:
        """Refresh the tables in a thread of its own: vacuuming a large table takes seconds,
        which batches would otherwise wait out (VACUUM blocks no insert or delete). One at a
        time; one that fails is logged and the next one tries again."""
        if self.refreshing is not None and self.refreshing.is_alive():
            return

        def refresh() -> None:
            try:
                refresh_statistics(self.db, self.projections, self.suffix)
            except Exception as exc:  # noqa: BLE001 -- autovacuum remains; the next one retries
                log.warning("refreshing the read models' tables failed: %s", type(exc).__name__)

        self.refreshing = threading.Thread(target=refresh, name="projections-refresh", daemon=True)
        self.refreshing.start()

    def _lock(self, tx: Tx) -> bool:
        """One worker per read-model group; a rebuild's swap excludes every batch."""
        if not isinstance(self.db, PostgresDatabase):
            return True  # SQLite: BEGIN IMMEDIATE already holds the only write lock.
        tx.execute("SELECT pg_advisory_xact_lock_shared(?)", (lock_key(self.db, SWAP_LOCK),))
        row = tx.fetchone("SELECT pg_try_advisory_xact_lock(?)", (lock_key(self.db, self.group),))
        return bool(row and row[0])

    def _apply_batch(self, tx: Tx) -> int:
        positions = self.positions_in(tx)
        start = min(positions.values(), default=0)
        limit = self.next_batch
        if self.stop is not None:
            limit = min(limit, self.stop - start)
            if limit <= 0:
                return 0
        notifications = read = self.app.log_page(start, limit)
        if self.stop is not None:  # positions have gaps (a rolled-back append): count by id
            notifications = read = [n for n in read if n.id <= self.stop]
        # Behind (a full batch): the next one is larger, up to `largest_batch`; else back down.
        full = len(notifications) == limit
        self.behind = full
        self.next_batch = min(2 * limit, self.largest_batch) if full else self.batch_size
        if self.final is None and self.largest_batch > self.batch_size:
            # Catching up keeps as many cases folded as a rebuild; tailing, the usual few.
            self.states.resize(REBUILD_CASE_STATES if full else CASE_STATES)
        if not notifications:
            return 0
        if self.partition is not None:
            notifications = [n for n in notifications if self._read(n)]
        try:
            changes = self._changes(notifications)
            own = changes if self.partition is None else [c for c in changes if self._own(c)]
            shared: dict[int, tuple[list[Change], list[Change]]] = {}
            for projection in self.projections:
                mine = own if projection.keyed_by_case else changes
                todo = _after(mine, positions[projection.name])
                if _rows_follow_the_case(projection):
                    # Every such read model picks the same changes: pick them once.
                    held = shared.get(id(todo))
                    if held is None or held[0] is not todo:
                        picked = todo if self.final is None else _final_only(todo, self.final)
                        held = shared[id(todo)] = (todo, projection.relevant(picked))
                    projection.handle_batch(tx, held[1], self.suffix)
                else:
                    projection.handle_batch(tx, projection.relevant(todo), self.suffix)
        except BaseException:
            self.states.forget()
            raise
        last = read[-1].id
        write_positions(tx, [self.tracking_name(p) for p in self.projections], last)
        now = time.time()
        for projection in self.projections:
            stats = self.stats[projection.name]
            stats.processed += len(read)
            stats.position = last
            stats.last_batch_at = now
        return len(read)

    def catch_up(self) -> int:
        total = 0
        while True:
            done = self.run_once()
            total += done
            if done == 0:
                return total

    def _maintenance_due(self, done: int) -> bool:
        """After `maintain_after` entries, once not behind (a batch not full): refresh the
        tables, after the batch's commit. A rebuild does it once, at its end, before it
        returns."""
        self.unmaintained += done
        if self.behind or self.final is not None or self.unmaintained < self.maintain_after:
            return False
        self.unmaintained = 0
        return True

    def _part_of(self, case_id: UUID) -> bool:
        index, count = self.partition or (0, 1)
        return part_of(case_id, count) == index

    def _read(self, notification: Any) -> bool:
        """In a part of a rebuild: whether this part decodes the entry (part 0: every one)."""
        index, _count = self.partition or (0, 1)
        if index == 0:
            return True
        return notification.topic.startswith(TOPIC_PREFIX) and self._part_of(
            notification.originator_id
        )

    def _foreign(self, notification: Any) -> bool:
        """In part 0 of a rebuild: whether the entry is an event of another part's case. Its
        read models that read no case see only its envelope (type, ids, times); its sealed
        values are left sealed, and its case's key is not fetched."""
        return (
            self.partition is not None
            and notification.topic.startswith(TOPIC_PREFIX)
            and not self._part_of(notification.originator_id)
        )

    def _own(self, change: Change) -> bool:
        """In a part of a rebuild: whether its keyed read models handle this change."""
        event = change.case_event
        return event is None or self._part_of(event.originator_id)

    def _changes(self, notifications: Sequence[Any]) -> list[Change]:
        """The batch's changes, each case event with its case and where the batch opened it."""
        changes: list[Change] = []
        opened_at: dict[UUID, int] = {}
        foreigners = [self._foreign(n) for n in notifications]
        self.app.expect_reads(  # the keys of the cases it opens, in one go
            {
                n.originator_id
                for n, foreign in zip(notifications, foreigners, strict=True)
                if not foreign and n.topic.startswith(TOPIC_PREFIX)
            }
        )
        for notification, foreign in zip(notifications, foreigners, strict=True):
            event = (self.decode_envelope if foreign else self.decode)(notification)
            case = None
            if isinstance(event, CaseEvent) and not foreign:
                case = self.states.advance(event)
                if event.originator_version == 1:
                    opened_at[event.originator_id] = notification.id
                if (
                    self.final is not None
                    and self.final.get(event.originator_id) == notification.id
                ):
                    self.states.drop(event.originator_id)  # its last event up to the plan
            changes.append(
                Change(
                    position=notification.id,
                    event=event,
                    case=case,
                    notification=notification,
                    opened_at=None if case is None else opened_at.get(event.originator_id),
                )
            )
        return changes

    def positions(self) -> dict[str, int]:
        with self.db.reading() as tx:
            return self.positions_in(tx)

    def positions_in(self, tx: Tx) -> dict[str, int]:
        """Each read model's position, as a transaction that also reads them sees it."""
        stored = read_positions(tx, [self.tracking_name(p) for p in self.projections])
        return {p.name: stored[self.tracking_name(p)] for p in self.projections}

    def reached(self, position: int) -> bool:
        """Whether every read model has reached `position`; if not, an embedded runner is woken."""
        if min(self.positions().values(), default=position) >= position:
            return True
        self.nudge.set()
        return False

    def wait_for(self, position: int, timeout: float) -> bool:
        """Block until every read model has reached `position`, or the timeout passes."""
        deadline = time.monotonic() + timeout
        delay = 0.01
        while True:
            if self.reached(position):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(delay)
            delay = min(delay * 2, 0.2)

    def run_forever(
        self, stop: threading.Event, poll_interval: float = 0.25, *, gather: float = 0.0
    ) -> None:
        """Poll the log until `stop` is set; a nudge wakes it early.

        `gather`: once woken by a nudge (an append), wait this long before reading the batch,
        so that the appends arriving meanwhile share it. A batch's fixed work (locks,
        positions, a delete and a copy per table, the commit) is most of a live batch of one
        event: under load, batches of several appends cost a fraction per append.
        """
        while not stop.is_set():
            done = self.run_once()
            if done and self.behind:
                continue  # a full batch: more is waiting already
            woken = True
            if done == 0:
                woken = self.nudge.wait(poll_interval)
                self.nudge.clear()
            if woken and gather > 0 and not stop.is_set():
                stop.wait(gather)


@fewer_collections()
def rebuild(
    app: ReferralApplication,
    db: SqliteDatabase | PostgresDatabase,
    projections: Sequence[Projection],
    *,
    batch_size: int | None = None,
    swap: bool = True,
    suffix: str = REBUILD_SUFFIX,
    processes: int | None = None,
) -> int:
    """Replay the whole log into fresh tables, then swap them in for the live ones.

    Live runners keep serving from the old tables meanwhile; the swap, which first applies what
    arrived during the rebuild, excludes every batch (an exclusive advisory lock on PostgreSQL,
    the write lock on SQLite). Returns the position the rebuilt read models reached.
    `processes`: how many share the cases out (`projections.rebuild_parts`); None: as many
    as `rebuild_processes` says. The collector runs less often meanwhile
    (`projections.collector`).
    """
    with db.transaction() as tx:
        ensure_tracking(tx)
        for projection in projections:
            projection.drop(tx, suffix)
        tx.execute(
            f"DELETE FROM {TRACKING_TABLE} WHERE name IN ({', '.join('?' * len(projections))}) "
            f"OR name LIKE ?",
            [p.name + suffix for p in projections] + [f"%{suffix}{PART_MARK}%"],
        )
    runner = ProjectionRunner(app, db, projections, batch_size=batch_size, suffix=suffix)
    upto = app.recorder.max_notification_id() or 0
    runner.final = app.stream_ends(upto)
    runner.states.resize(max(runner.states.size, min(len(runner.final), REBUILD_CASE_STATES)))
    parts = rebuild_processes(db, projections, upto) if processes is None else processes
    if parts > 1 and isinstance(db, PostgresDatabase) and db.url and shareable(projections):
        # (imported here: rebuild_parts imports this module)
        from projections.rebuild_parts import rebuild_in_parts

        rebuild_in_parts(runner, db, upto, parts)
    runner.catch_up()
    runner.final = None
    if not swap:
        refresh_statistics(db, projections, suffix)
        return min(runner.positions().values(), default=0)
    with db.transaction() as tx:
        if isinstance(db, PostgresDatabase):
            tx.execute("SELECT pg_advisory_xact_lock(?)", (lock_key(db, SWAP_LOCK),))
        while runner._apply_batch(tx):
            pass
        position = min(runner.positions_in(tx).values())
        for projection in projections:
            projection.swap_in(tx, suffix)
            write_position(tx, projection.name, position)
            delete_position(tx, projection.name + suffix)
    refresh_statistics(db, projections)  # after the swap: SQLite keeps statistics per index
    return position


PART_MARK = "@part"
"""Between a rebuild's suffix and a part's number in the names of the parts' positions."""
PARALLEL_FROM = 100_000
"""Log entries from which a rebuild shares its cases out among processes by default (below,
starting the processes costs more than it saves)."""
MAX_PROCESSES = 8


def part_of(case_id: UUID, count: int) -> int:
    """Which of `count` parts of a rebuild folds a case: part 0, which also reads every other
    entry (other parts' case events by their envelope only) and runs the read models that are
    not keyed by case, takes one share of the cases, every other part two (measured at
    1,860,000 entries with equal shares: part 0 took a third longer than part 1; at 149,000
    entries in two processes, equal shares and shares of 1 to 3 were both slower than 1 to 2)."""
    if count <= 1:
        return 0
    return (case_id.int % (2 * count - 1) + 1) // 2


def shareable(projections: Sequence[Projection]) -> bool:
    """Whether a rebuild of these read models can share the cases out among processes: every
    read model is keyed by case or reads no case (see `Projection.reads_cases`)."""
    return all(p.keyed_by_case or not p.reads_cases for p in projections)


def rebuild_processes(
    db: SqliteDatabase | PostgresDatabase, projections: Sequence[Projection], upto: int
) -> int:
    """How many processes a rebuild uses by default: on PostgreSQL, with a log of at least
    `PARALLEL_FROM` entries, one per core (up to `MAX_PROCESSES`); else one. (On SQLite the
    parts would wait for one another's write lock.)"""
    if not isinstance(db, PostgresDatabase) or upto < PARALLEL_FROM or not shareable(projections):
        return 1
    return max(1, min(os.cpu_count() or 1, MAX_PROCESSES))
