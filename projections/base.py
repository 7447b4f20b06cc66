"""What a read model is: tables it owns, and how one change in the log updates them."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from projections.db import Tx
from referral_core.case import Case, CaseEvent


@dataclass(frozen=True)
class Change:
    """One event of the log, at its position, with the case as it stands after it."""

    position: int
    event: object
    case: Case | None

    @property
    def case_event(self) -> CaseEvent | None:
        return self.event if isinstance(self.event, CaseEvent) else None


class Projection(ABC):
    """A read model: built only from the log, rebuildable at any time to the same rows."""

    name: str
    tables: tuple[str, ...]

    @abstractmethod
    def create(self, tx: Tx, suffix: str = "") -> None:
        """Create this read model's tables (named with `suffix` during a rebuild)."""

    @abstractmethod
    def handle(self, tx: Tx, change: Change, suffix: str = "") -> None:
        """Apply one change, in the transaction that also moves the read model's position."""

    def drop(self, tx: Tx, suffix: str = "") -> None:
        for table in self.tables:
            tx.execute(f"DROP TABLE IF EXISTS {table}{suffix}")
