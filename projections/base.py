"""What a read model is: the tables it owns, and how one change in the log updates them.

A read model declares its tables and indexes; this base creates them under any suffix (a rebuild
builds `name_rebuild` tables beside the live ones) and swaps a finished rebuild in.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

from eventsourcing.persistence import Notification

from projections.db import Tx
from referral_core.case import Case, CaseEvent


@dataclass(frozen=True)
class Change:
    """One event of the log, at its position, with the case as it stands after it."""

    position: int
    event: object
    case: Case | None
    notification: Notification | None = None
    """The stored event as it is in the log (topic, ids, the stored bytes)."""

    @property
    def case_event(self) -> CaseEvent | None:
        return self.event if isinstance(self.event, CaseEvent) else None


@dataclass(frozen=True)
class Index:
    name: str
    table: str
    columns: str
    unique: bool = False


class Projection(ABC):
    """A read model: built only from the log, rebuildable at any time to the same rows."""

    name: ClassVar[str]
    tables: ClassVar[dict[str, str]]
    """Table name -> column definitions (the part between the parentheses)."""
    indexes: ClassVar[tuple[Index, ...]] = ()

    def create(self, tx: Tx, suffix: str = "") -> None:
        """Create this read model's tables and indexes (named with `suffix` in a rebuild)."""
        for table, columns in self.tables.items():
            tx.execute(f"CREATE TABLE IF NOT EXISTS {table}{suffix} ({columns})")
        for index in self.indexes:
            unique = "UNIQUE " if index.unique else ""
            tx.execute(
                f"CREATE {unique}INDEX IF NOT EXISTS {index.name}{suffix} "
                f"ON {index.table}{suffix} ({index.columns})"
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

    @abstractmethod
    def handle(self, tx: Tx, change: Change, suffix: str = "") -> None:
        """Apply one change, in the transaction that also moves the read model's position."""
