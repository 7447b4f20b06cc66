# ruff: noqa: S608 -- table and column names are this module's constants, never input
"""The attacker: raw access to the events and leaves tables, as the database superuser would.

Nothing here goes through the application, the mapper or the read-model gateway: the events
table is edited with psycopg (PostgreSQL) or sqlite3 directly.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit
from uuid import UUID

import psycopg

from adapters.integrity.chain import (
    HEADER_SIZE,
    ZERO_HASH,
    event_hash,
    event_leaf_hash,
    with_header,
)


@dataclass(frozen=True)
class Row:
    position: int
    case_id: str
    version: int
    topic: str
    state: bytes


class RawLog:
    """The events table and the integrity read model's tables, edited in place."""

    def __init__(self, database_url: str) -> None:
        parts = urlsplit(database_url)
        self.postgres = parts.scheme.startswith("postgres")
        if self.postgres:
            schema = parse_qs(parts.query)["schema"][0]
            self.conn: Any = psycopg.connect(
                parts._replace(query="").geturl(),
                autocommit=True,
                options=f"-c search_path={schema}",
            )
            self.events, self.position = "referral_events", "notification_id"
        else:
            self.conn = sqlite3.connect(parts.path[1:])
            self.conn.isolation_level = None
            self.events, self.position = "stored_events", "rowid"

    def close(self) -> None:
        self.conn.close()

    def _run(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        if self.postgres:
            sql = sql.replace("?", "%s")
        cursor = self.conn.execute(sql, params)
        try:
            return [tuple(r) for r in cursor.fetchall()]
        except (psycopg.ProgrammingError, sqlite3.ProgrammingError):
            return []

    def _id(self, case_id: str) -> Any:
        return UUID(case_id) if self.postgres else UUID(case_id).hex

    # -- reading -----------------------------------------------------------------------------

    def rows(self) -> list[Row]:
        found = self._run(
            f"SELECT {self.position}, originator_id, originator_version, topic, state "
            f"FROM {self.events} ORDER BY {self.position}"
        )
        return [Row(int(r[0]), str(UUID(str(r[1]))), int(r[2]), r[3], bytes(r[4])) for r in found]

    def case_rows(self, case_id: str) -> list[Row]:
        return [r for r in self.rows() if r.case_id == case_id]

    # -- attacks on events -------------------------------------------------------------------

    def set_state(self, position: int, state: bytes) -> None:
        self._run(
            f"UPDATE {self.events} SET state = ? WHERE {self.position} = ?", (state, position)
        )

    def delete(self, position: int) -> None:
        self._run(f"DELETE FROM {self.events} WHERE {self.position} = ?", (position,))

    def delete_case(self, case_id: str) -> None:
        self._run(f"DELETE FROM {self.events} WHERE originator_id = ?", (self._id(case_id),))

    def delete_after(self, position: int) -> None:
        self._run(f"DELETE FROM {self.events} WHERE {self.position} > ?", (position,))

    def swap_positions(self, a: int, b: int) -> None:
        parking = -1
        self._run(
            f"UPDATE {self.events} SET {self.position} = ? WHERE {self.position} = ?", (parking, a)
        )
        self._run(
            f"UPDATE {self.events} SET {self.position} = ? WHERE {self.position} = ?", (a, b)
        )
        self._run(
            f"UPDATE {self.events} SET {self.position} = ? WHERE {self.position} = ?", (b, parking)
        )

    # -- attacks on the read model -----------------------------------------------------------

    def delete_leaves_after(self, position: int) -> None:
        self._run("DELETE FROM merkle_leaves WHERE position > ?", (position,))

    def set_leaf(self, position: int, leaf_hash: bytes) -> None:
        self._run(
            "UPDATE merkle_leaves SET leaf_hash = ? WHERE position = ?",
            (leaf_hash.hex(), position),
        )

    def delete_heads(self) -> None:
        self._run("DELETE FROM tree_heads")

    def rehash_from(self, target: Row, body: bytes) -> None:
        """Replace one event's body, then re-chain its stream and re-hash its leaves after it."""
        previous = ZERO_HASH
        for row in self.case_rows(target.case_id):
            if row.version < target.version:
                previous = event_hash(UUID(row.case_id), row.version, row.topic, row.state)
                continue
            new_body = body if row.version == target.version else row.state[HEADER_SIZE:]
            state = with_header(previous, new_body)
            self.set_state(row.position, state)
            digest = event_hash(UUID(row.case_id), row.version, row.topic, state)
            self.set_leaf(row.position, event_leaf_hash(row.position, digest))
            previous = digest


def flip_byte(state: bytes, needle: bytes = b'"correlation_id":"') -> bytes:
    """The state with the byte just after `needle` changed (by default a letter of a string
    value, so the stored JSON stays valid and only the verifier can tell)."""
    at = state.index(needle, HEADER_SIZE) + len(needle)
    changed = bytearray(state)
    changed[at] ^= 0x01
    return bytes(changed)
