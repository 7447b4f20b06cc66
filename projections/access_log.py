"""Reads of identifying data and break-glass accesses, listed for auditors by case and by user."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from projections.base import Change, Index, Projection
from projections.db import Row, Tx
from referral_core.access import AccessRecord

ACCESS_COLUMNS = (
    "position",
    "recorded_at",
    "user_id",
    "agency_id",
    "role",
    "case_id",
    "what",
    "purpose",
    "break_glass",
    "correlation_id",
)


class AccessLog(Projection):
    name = "access_log"
    reads_cases = False
    tables: ClassVar[dict[str, str]] = {
        "access_log": "position BIGINT PRIMARY KEY, recorded_at TEXT NOT NULL, "
        "user_id TEXT NOT NULL, agency_id TEXT NOT NULL, role TEXT NOT NULL, "
        "case_id TEXT NOT NULL, what TEXT NOT NULL, purpose TEXT, break_glass INTEGER NOT NULL, "
        "correlation_id TEXT NOT NULL"
    }
    indexes = (
        Index("access_log_by_case", "access_log", "case_id, position"),
        Index("access_log_by_user", "access_log", "user_id, position"),
    )

    def wants(self, change: Change) -> bool:
        return type(change.event).__qualname__ == "AccessRecord.Recorded"

    def handle(self, tx: Tx, change: Change, suffix: str = "") -> None:
        self.handle_batch(tx, [change], suffix)

    def handle_batch(self, tx: Tx, changes: Sequence[Change], suffix: str = "") -> None:
        rows = [self._row(change) for change in changes if self.wants(change)]
        if rows:
            tx.insert_rows(f"access_log{suffix}", ACCESS_COLUMNS, rows)

    @staticmethod
    def _row(change: Change) -> Row:
        data: dict[str, Any] = vars(change.event)
        return (
            change.position,
            data["timestamp"].isoformat(),
            data["user_id"],
            data["agency_id"],
            data["role"],
            data["case_id"],
            data["what"],
            data["purpose"],
            int(data["break_glass"]),
            data["correlation_id"],
        )


def list_access(
    tx: Tx, *, case_id: str | None, user_id: str | None, limit: int = 100
) -> list[dict[str, Any]]:
    sql = f"SELECT {', '.join(ACCESS_COLUMNS)} FROM access_log WHERE 1 = 1"
    params: list[Any] = []
    if case_id is not None:
        sql += " AND case_id = ?"
        params.append(case_id)
    if user_id is not None:
        sql += " AND user_id = ?"
        params.append(user_id)
    sql += " ORDER BY position DESC LIMIT ?"
    params.append(limit)
    rows = tx.fetchall(sql, params)
    return [
        dict(zip(ACCESS_COLUMNS, row, strict=True)) | {"break_glass": bool(row[8])} for row in rows
    ]


__all__ = ["AccessLog", "AccessRecord", "list_access"]
