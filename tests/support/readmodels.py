"""Helpers to compare read-model tables row for row."""

from __future__ import annotations

from typing import Any

from projections.base import Projection
from projections.db import PostgresDatabase, SqliteDatabase


def table_rows(
    db: SqliteDatabase | PostgresDatabase, projection: Projection, suffix: str = ""
) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of a read model, sorted, keyed by the live table name."""
    found: dict[str, list[tuple[Any, ...]]] = {}
    with db.transaction() as tx:
        for table in projection.tables:
            rows = tx.fetchall(f"SELECT * FROM {table}{suffix}")  # noqa: S608 -- test helper
            found[table] = sorted(rows, key=repr)
    return found
