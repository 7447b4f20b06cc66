"""What a read model is: the tables it owns, and how one change in the log updates them.

A read model declares its tables and indexes; this base creates them under any suffix (a rebuild
builds `name_rebuild` tables beside the live ones) and swaps a finished rebuild in.

The runner hands a read model a whole batch of changes (`handle_batch`). A read model whose rows
for a case are a function of the case as it stands and of the change that brought it there
(`keyed_by_case`) is given only the last change of each case in the batch that it `wants`: the
rows the earlier ones would write are replaced anyway. That is what makes a rebuild fast, and
it writes exactly the rows that handling every change in turn would.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from eventsourcing.persistence import Notification

from projections.db import Row, Tx
from referral_core.case import Case, CaseEvent


@dataclass(frozen=True)
class Change:
    """One event of the log, at its position, with its case.

    `case` is the case as it stands after the batch's last change of that case, which is this
    change only for the changes `Projection.relevant` keeps for a `keyed_by_case` read model:
    only those read it.
    """

    position: int
    event: object
    """The decoded event. A case event is opened only as far as the case's fold reads it
    (`ReferralApplication.log_fold_decoder`): its other sensitive values stay sealed, since
    a read model reads the case and the event's envelope (type, ids, times), never those."""
    case: Case | None
    notification: Notification | None = None
    """The stored event as it is in the log (topic, ids, the stored bytes)."""
    opened_at: int | None = None
    """The position of the case's first event when the batch handed to the read model holds it
    (so the read model has no rows of the case from earlier batches), else None."""

    @property
    def case_event(self) -> CaseEvent | None:
        return self.event if isinstance(self.event, CaseEvent) else None


@dataclass(frozen=True)
class Index:
    name: str
    table: str
    columns: str
    unique: bool = False
    where: str = ""
    """A partial index's condition (SQL both databases read alike), or none."""


class Projection(ABC):
    """A read model: built only from the log, rebuildable at any time to the same rows."""

    name: ClassVar[str]
    tables: ClassVar[dict[str, str]]
    """Table name -> column definitions (the part between the parentheses)."""
    indexes: ClassVar[tuple[Index, ...]] = ()
    retired_indexes: ClassVar[tuple[str, ...]] = ()
    """Indexes an earlier release created and this one replaced: dropped when it starts."""

    def create(self, tx: Tx, suffix: str = "") -> None:
        """Create this read model's tables and indexes (named with `suffix` in a rebuild)."""
        for table, columns in self.tables.items():
            tx.execute(f"CREATE TABLE IF NOT EXISTS {table}{suffix} ({columns})")
        for name in self.retired_indexes:
            tx.execute(f"DROP INDEX IF EXISTS {name}{suffix}")
        for index in self.indexes:
            unique = "UNIQUE " if index.unique else ""
            where = f" WHERE {index.where}" if index.where else ""
            tx.execute(
                f"CREATE {unique}INDEX IF NOT EXISTS {index.name}{suffix} "
                f"ON {index.table}{suffix} ({index.columns}){where}"
            )

    def drop(self, tx: Tx, suffix: str = "") -> None:
        for index in self.indexes:
            tx.execute(f"DROP INDEX IF EXISTS {index.name}{suffix}")
        for table in self.tables:
            tx.execute(f"DROP TABLE IF EXISTS {table}{suffix}")

    def swap_in(self, tx: Tx, suffix: str) -> None:
        """Replace the live tables by the `suffix` ones, with live-named indexes."""
        self.drop(tx)
        for index in self.indexes:
            tx.execute(f"DROP INDEX IF EXISTS {index.name}{suffix}")
        for table in self.tables:
            tx.execute(f"ALTER TABLE {table}{suffix} RENAME TO {table}")
        self.create(tx)

    reads_cases: ClassVar[bool] = True
    """Whether a read model not keyed by case reads the cases of its changes (`Change.case`).
    One that does not lets a rebuild share the cases out among processes
    (`projections.rebuild_parts`): it is then handed every change, some without their case,
    and those case events with their sealed values unopened (it may read their envelope:
    type, ids, times)."""

    keyed_by_case: ClassVar[bool] = False
    """Rows of a case depend only on the case after a change and that change's position and
    time: only the last change of each case in a batch needs handling."""

    def wants(self, change: Change) -> bool:
        """Whether this change can alter the read model (a keyed one keeps the last it wants)."""
        return True

    def relevant(self, changes: Sequence[Change]) -> list[Change]:
        """The changes of a batch this read model must handle, in log order."""
        wanted = [c for c in changes if self.wants(c)]
        if not self.keyed_by_case:
            return wanted
        last: dict[object, int] = {}
        for change in wanted:
            if change.case is not None:
                last[change.case.id] = change.position
        return [c for c in wanted if c.case is None or last[c.case.id] == c.position]

    def handle_batch(self, tx: Tx, changes: Sequence[Change], suffix: str = "") -> None:
        """Apply a batch's relevant changes in order (a read model may do it in fewer steps)."""
        for change in changes:
            self.handle(tx, change, suffix)

    @abstractmethod
    def handle(self, tx: Tx, change: Change, suffix: str = "") -> None:
        """Apply one change, in the transaction that also moves the read model's position."""


CASE_ID_CHUNK = 500
"""Case ids per `DELETE … WHERE case_id IN (…)`: well under every database's parameter limit."""


class CaseRowsProjection(Projection):
    """A read model whose rows of a case are rewritten from the case after each change.

    Subclasses say which tables hold rows keyed by `case_id` and with which columns
    (`case_columns`), and compute a case's rows (`case_rows`); a batch deletes the rows of all
    its cases in a few statements (none for a case the batch opened: it has no rows yet) and
    inserts the new ones with one `insert_rows` per table. Changes that are not case events go
    to `handle_other`.
    """

    keyed_by_case = True
    case_columns: ClassVar[dict[str, tuple[str, ...]]]
    """Table -> the columns `case_rows` gives for it, in order."""

    @abstractmethod
    def case_rows(self, case: Case, event: CaseEvent, position: int) -> dict[str, list[Row]]:
        """The rows of each table for this case after `event` (at log `position`)."""

    def handle_other(self, tx: Tx, change: Change, suffix: str) -> None:
        """A change that is not a case event; most case read models ignore them."""

    def handle(self, tx: Tx, change: Change, suffix: str = "") -> None:
        self.handle_batch(tx, [change], suffix)

    def handle_batch(self, tx: Tx, changes: Sequence[Change], suffix: str = "") -> None:
        case_ids: list[str] = []
        inserts: dict[str, list[Row]] = {table: [] for table in self.case_columns}
        for change in changes:
            case, event = change.case, change.case_event
            if case is None or event is None:
                self.handle_other(tx, change, suffix)
                continue
            if change.opened_at is None:
                case_ids.append(str(case.id))
            for table, rows in self.case_rows(case, event, change.position).items():
                inserts[table].extend(rows)
        for table in self.case_columns:
            for start in range(0, len(case_ids), CASE_ID_CHUNK):
                chunk = case_ids[start : start + CASE_ID_CHUNK]
                marks = ", ".join("?" * len(chunk))
                tx.execute(f"DELETE FROM {table}{suffix} WHERE case_id IN ({marks})", chunk)
        for table, rows in inserts.items():
            if rows:
                tx.insert_rows(f"{table}{suffix}", self.case_columns[table], rows)
