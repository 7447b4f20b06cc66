"""Logical backup: the whole log as JSON Lines, and loading it into an empty store.

`export_log` reads one consistent snapshot of the store (a REPEATABLE READ, READ ONLY
transaction on PostgreSQL; one read transaction on SQLite) and writes, one JSON object a line:

* ``{"kind": "header", "format": "referral-export/1", ...}``
* ``{"kind": "event", "position", "originator_id", "originator_version", "topic", "state",
  "hash"}`` for every stored event in log order: the stored bytes in base64 exactly as stored
  (chain header and ciphertext included), `hash` the event's chain hash
  (`adapters.integrity.chain.event_hash`), `position` its notification id;
* ``{"kind": "case_key", ...}`` every row of `case_keys` (case keys stay wrapped by the master
  keys; an erased case's row has no key);
* ``{"kind": "tree_head", ...}`` every signed tree head of the integrity read model;
* ``{"kind": "export_head", ...}`` with a signing key, a tree head signed now over every
  exported event, so nothing after the last stored head can be rewritten unnoticed either;
* ``{"kind": "end", "events", "case_keys", "tree_heads", "last_position", "sha256"}``, the
  counts and the SHA-256 of every line before it.

`import_log` refuses a store that holds any event or case key, then loads the file in one
transaction, keeping every position and byte. Before it commits it checks everything it can:
each line's hash against its bytes, each chain link against the previous event of its case,
strictly increasing positions, the counts and the digest of the end record (a truncated file
has none), each tree head's root against the Merkle tree of the imported events and, with the
verifying key, its signature. Any mismatch rolls the whole import back with a `BackupError`
naming the first line at fault. A rewritten file whose hashes, roots and digest were all
recomputed is only caught by a signature: keep the signing key's public half where the import
runs (the same `REFERRAL_SIGNING_KEY`), or the import says it could not check signatures.

Read models are not exported: rebuild them from the imported log (`referral projections
rebuild`); with the same signing key and schedule the integrity read model signs the same heads.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any
from uuid import UUID

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from eventsourcing.persistence import ApplicationRecorder
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Identifier

from adapters.crypto.keystore import TABLE as KEYS_TABLE
from adapters.integrity.chain import (
    ZERO_HASH,
    ChainHeaderError,
    event_hash,
    event_leaf_hash,
    split_header,
)
from adapters.integrity.merkle import MerkleTree
from adapters.integrity.tree_head import (
    SignedTreeHead,
    TreeHeadSigner,
    key_id_for,
    verify_tree_head,
)

FORMAT = "referral-export/1"
HEADS_TABLE = "tree_heads"
"""The integrity read model's table of signed heads (`projections.integrity.HEADS`)."""
BATCH = 1000
KEY_COLUMNS = ("case_id", "wrapped_key", "master_key_id", "created_at", "destroyed_at")
HEAD_COLUMNS = ("tree_size", "root_hash", "signed_at", "key_id", "signature", "position")


class BackupError(ValueError):
    """An export cannot be written or a file cannot be imported; one line, names the cause."""


@dataclass
class BackupSummary:
    """What an export wrote or an import loaded."""

    events: int = 0
    case_keys: int = 0
    tree_heads: int = 0
    last_position: int = 0
    signed_head: SignedTreeHead | None = None
    signatures_checked: int = 0
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        head = (
            f", export head {self.signed_head.tree_size}:{self.signed_head.root_hash.hex()}"
            if self.signed_head
            else ""
        )
        return (
            f"{self.events} events up to position {self.last_position}, "
            f"{self.case_keys} case keys, {self.tree_heads} tree heads{head}"
        )


# -- export ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Snapshot:
    events: Iterator[tuple[int, Any, int, str, bytes]]
    rest: Any  # a callable: () -> (key rows, head rows), in the same snapshot


def export_log(
    recorder: ApplicationRecorder,
    out: IO[str],
    *,
    signer: TreeHeadSigner | None,
    now: datetime,
) -> BackupSummary:
    """Write the store's log, case keys and tree heads to `out` (see the module docstring)."""
    summary = BackupSummary()
    digest = hashlib.sha256()
    tree = MerkleTree()

    def write(record: dict[str, Any]) -> None:
        line = json.dumps(record, separators=(",", ":"), sort_keys=True) + "\n"
        digest.update(line.encode("utf-8"))
        out.write(line)

    write({"kind": "header", "format": FORMAT, "exported_at": now.isoformat()})
    with _snapshot(recorder) as snapshot:
        for position, stream, version, topic, state in snapshot.events:
            stored = bytes(state)
            event_digest = event_hash(stream, version, topic, stored)
            tree.append(event_leaf_hash(position, event_digest))
            write(
                {
                    "kind": "event",
                    "position": position,
                    "originator_id": str(_uuid(stream)),
                    "originator_version": version,
                    "topic": topic,
                    "state": base64.b64encode(stored).decode("ascii"),
                    "hash": event_digest.hex(),
                }
            )
            summary.events += 1
            summary.last_position = position
        keys, heads = snapshot.rest()
    for key in keys:
        row = dict(zip(KEY_COLUMNS, key, strict=True))
        wrapped = row["wrapped_key"]
        row["wrapped_key"] = None if wrapped is None else base64.b64encode(wrapped).decode()
        write({"kind": "case_key", **{k: _text(v) for k, v in row.items()}})
        summary.case_keys += 1
    for head in heads:
        write({"kind": "tree_head", **dict(zip(HEAD_COLUMNS, head, strict=True))})
        summary.tree_heads += 1
    if signer is not None and tree.size:
        summary.signed_head = signer.sign(tree.size, tree.root(), now)
        write({"kind": "export_head", **json.loads(summary.signed_head.to_json())})
    out.write(
        json.dumps(
            {
                "kind": "end",
                "events": summary.events,
                "case_keys": summary.case_keys,
                "tree_heads": summary.tree_heads,
                "last_position": summary.last_position,
                "sha256": digest.hexdigest(),
            },
            separators=(",", ":"),
            sort_keys=True,
        )
        + "\n"
    )
    return summary


def _text(value: Any) -> Any:
    return None if value is None else str(value)


def _uuid(stream: UUID | str) -> UUID:
    return stream if isinstance(stream, UUID) else UUID(stream)


@contextmanager
def _snapshot(recorder: ApplicationRecorder) -> Iterator[_Snapshot]:
    table = recorder.events_table_name  # type: ignore[attr-defined]
    if isinstance(recorder, SQLiteApplicationRecorder):
        with recorder.datastore.transaction(commit=False) as curs:
            raw = curs.sqlite_cursor
            raw.execute(
                "SELECT rowid, originator_id, originator_version, topic, state "  # noqa: S608
                f"FROM {table} ORDER BY rowid"
            )

            def sqlite_events() -> Iterator[tuple[int, Any, int, str, bytes]]:
                while rows := raw.fetchmany(BATCH):
                    yield from (tuple(r) for r in rows)

            def sqlite_rest() -> tuple[list[Any], list[Any]]:
                raw.execute(f"SELECT {', '.join(KEY_COLUMNS)} FROM {KEYS_TABLE} ORDER BY case_id")  # noqa: S608
                keys = [tuple(r) for r in raw.fetchall()]
                found = raw.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                    (HEADS_TABLE,),
                ).fetchone()
                heads: list[Any] = []
                if found:
                    raw.execute(
                        f"SELECT {', '.join(HEAD_COLUMNS)} FROM {HEADS_TABLE} ORDER BY tree_size"  # noqa: S608
                    )
                    heads = [tuple(r) for r in raw.fetchall()]
                return keys, heads

            yield _Snapshot(sqlite_events(), sqlite_rest)
        return
    if isinstance(recorder, PostgresApplicationRecorder):
        schema = recorder.datastore.schema
        with recorder.datastore.get_connection() as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            with conn.cursor(name="referral_export", row_factory=tuple_row) as cur:
                cur.itersize = BATCH
                cur.execute(
                    SQL(
                        "SELECT notification_id, originator_id, originator_version, topic, state "
                        "FROM {}.{} ORDER BY notification_id"
                    ).format(Identifier(schema), Identifier(table))
                )

                def pg_rest() -> tuple[list[Any], list[Any]]:
                    with conn.cursor(row_factory=tuple_row) as plain:
                        plain.execute(
                            SQL("SELECT {} FROM {}.{} ORDER BY case_id").format(
                                SQL(", ").join(map(Identifier, KEY_COLUMNS)),
                                Identifier(schema),
                                Identifier(KEYS_TABLE),
                            )
                        )
                        keys = list(plain.fetchall())
                        plain.execute("SELECT to_regclass(%s)", (f'"{schema}".{HEADS_TABLE}',))
                        exists = plain.fetchone()
                        heads: list[Any] = []
                        if exists and exists[0] is not None:
                            plain.execute(
                                SQL("SELECT {} FROM {}.{} ORDER BY tree_size").format(
                                    SQL(", ").join(map(Identifier, HEAD_COLUMNS)),
                                    Identifier(schema),
                                    Identifier(HEADS_TABLE),
                                )
                            )
                            heads = list(plain.fetchall())
                    return keys, heads

                yield _Snapshot(iter(cur), pg_rest)
        return
    raise BackupError(f"cannot export from {type(recorder).__name__}")


# -- import ------------------------------------------------------------------------------------


@dataclass
class _Checker:
    """Everything checked while a file is read, before anything is committed."""

    public_key: Ed25519PublicKey | None
    known_master_keys: frozenset[str]
    summary: BackupSummary = field(default_factory=BackupSummary)
    digest: Any = field(default_factory=hashlib.sha256)
    tree: MerkleTree = field(default_factory=MerkleTree)
    last_hash: dict[UUID, tuple[int, bytes]] = field(default_factory=dict)
    heads: list[tuple[int, SignedTreeHead]] = field(default_factory=list)
    ended: bool = False
    header: bool = False

    def event(self, number: int, record: dict[str, Any]) -> tuple[int, UUID, int, str, bytes]:
        try:
            position = int(record["position"])
            stream = UUID(str(record["originator_id"]))
            version = int(record["originator_version"])
            topic = str(record["topic"])
            state = base64.b64decode(str(record["state"]), validate=True)
            claimed = bytes.fromhex(str(record["hash"]))
        except (KeyError, ValueError, TypeError) as exc:
            raise BackupError(f"line {number}: a malformed event record") from exc
        if position <= self.summary.last_position:
            raise BackupError(f"line {number}: position {position} does not increase")
        digest = event_hash(stream, version, topic, state)
        if digest != claimed:
            raise BackupError(f"line {number}: the event's bytes do not match its hash")
        try:
            previous, _body = split_header(state)
        except ChainHeaderError as exc:
            raise BackupError(f"line {number}: the event has no chain header") from exc
        last = self.last_hash.get(stream)
        if version == 1:
            linked = last is None and previous == ZERO_HASH
        else:
            linked = last is not None and last == (version - 1, previous)
        if not linked:
            raise BackupError(
                f"line {number}: the chain of case {stream} breaks at version {version}"
            )
        self.last_hash[stream] = (version, digest)
        self.tree.append(event_leaf_hash(position, digest))
        self.summary.events += 1
        self.summary.last_position = position
        return position, stream, version, topic, state

    def case_key(self, number: int, record: dict[str, Any]) -> tuple[Any, ...]:
        try:
            wrapped = record["wrapped_key"]
            row = (
                str(record["case_id"]),
                None if wrapped is None else base64.b64decode(str(wrapped), validate=True),
                record["master_key_id"],
                str(record["created_at"]),
                record["destroyed_at"],
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise BackupError(f"line {number}: a malformed case key record") from exc
        if row[1] is not None and row[2] not in self.known_master_keys:
            raise BackupError(
                f"line {number}: a case key is wrapped by master key {row[2]!r}, which is "
                "not configured (add it to REFERRAL_MASTER_KEYS)"
            )
        self.summary.case_keys += 1
        return row

    def head(self, number: int, record: dict[str, Any], *, stored: bool) -> None:
        try:
            if stored:
                head = SignedTreeHead(
                    tree_size=int(record["tree_size"]),
                    root_hash=bytes.fromhex(str(record["root_hash"])),
                    timestamp=datetime.fromisoformat(str(record["signed_at"])),
                    key_id=str(record["key_id"]),
                    signature=bytes.fromhex(str(record["signature"])),
                )
            else:
                body = {k: v for k, v in record.items() if k != "kind"}
                head = SignedTreeHead.from_json(json.dumps(body))
        except (KeyError, ValueError, TypeError) as exc:
            raise BackupError(f"line {number}: a malformed tree head record") from exc
        self.heads.append((number, head))
        if stored:
            self.summary.tree_heads += 1
        else:
            self.summary.signed_head = head

    def end(self, number: int, record: dict[str, Any], digest: str) -> None:
        expected = {
            "events": self.summary.events,
            "case_keys": self.summary.case_keys,
            "tree_heads": self.summary.tree_heads,
            "last_position": self.summary.last_position,
            "sha256": digest,
        }
        for name, value in expected.items():
            if record.get(name) != value:
                raise BackupError(f"line {number}: the end record's {name} does not match")
        self.ended = True

    def finish(self) -> None:
        if not self.ended:
            raise BackupError("the file is truncated: it has no end record")
        for number, head in self.heads:
            if head.tree_size > self.tree.size or self.tree.root(head.tree_size) != head.root_hash:
                raise BackupError(
                    f"line {number}: the events do not match the signed tree head of size "
                    f"{head.tree_size}"
                )
            if self.public_key is None:
                continue
            if head.key_id != key_id_for(self.public_key):
                note = f"tree heads signed by key {head.key_id}: signatures not checked"
                if note not in self.summary.notes:
                    self.summary.notes.append(note)
                continue
            if not verify_tree_head(head, self.public_key):
                raise BackupError(f"line {number}: the tree head's signature does not verify")
            self.summary.signatures_checked += 1
        if self.public_key is None and self.heads:
            self.summary.notes.append("no verifying key configured: signatures not checked")


def import_log(
    recorder: ApplicationRecorder,
    lines: Iterable[str],
    *,
    public_key: Ed25519PublicKey | None,
    master_key_ids: Iterable[str],
) -> BackupSummary:
    """Load an export into this empty store, in one transaction; `BackupError` if refused."""
    checker = _Checker(public_key, frozenset(master_key_ids))
    with _writer(recorder) as writer:
        writer.refuse_unless_empty()
        events: list[tuple[int, UUID, int, str, bytes]] = []
        keys: list[tuple[Any, ...]] = []
        for number, line in enumerate(lines, start=1):
            if checker.ended:
                raise BackupError(f"line {number}: data after the end record")
            record = _parse(number, line)
            kind = record.get("kind")
            if number == 1:
                if kind != "header" or record.get("format") != FORMAT:
                    raise BackupError(f"line 1: not a {FORMAT} file")
                checker.digest.update(line.encode("utf-8"))
                continue
            if kind == "end":
                checker.end(number, record, checker.digest.hexdigest())
                continue
            checker.digest.update(line.encode("utf-8"))
            if kind == "event":
                events.append(checker.event(number, record))
                if len(events) >= BATCH:
                    writer.events(events)
                    events.clear()
            elif kind == "case_key":
                keys.append(checker.case_key(number, record))
            elif kind == "tree_head":
                checker.head(number, record, stored=True)
            elif kind == "export_head":
                checker.head(number, record, stored=False)
            else:
                raise BackupError(f"line {number}: unknown record kind {str(kind)[:40]!r}")
        writer.events(events)
        writer.case_keys(keys)
        checker.finish()
        writer.after_load(checker.summary.last_position)
    return checker.summary


def _parse(number: int, line: str) -> dict[str, Any]:
    if not line.endswith("\n"):
        raise BackupError(f"line {number}: the file is truncated (an unfinished line)")
    try:
        record = json.loads(line)
    except ValueError as exc:
        raise BackupError(f"line {number}: not JSON") from exc
    if not isinstance(record, dict):
        raise BackupError(f"line {number}: not a JSON object")
    return record


class _Writer:
    """Inserts into one open transaction of the store (see `_writer`)."""

    def __init__(self, cursor: Any, recorder: ApplicationRecorder) -> None:
        self.cursor = cursor
        self.recorder = recorder
        self.table: str = recorder.events_table_name  # type: ignore[attr-defined]

    def refuse_unless_empty(self) -> None:
        raise NotImplementedError

    def events(self, rows: list[tuple[int, UUID, int, str, bytes]]) -> None:
        raise NotImplementedError

    def case_keys(self, rows: list[tuple[Any, ...]]) -> None:
        raise NotImplementedError

    def after_load(self, last_position: int) -> None:
        """Dialect hook: once every row is in."""


class _SqliteWriter(_Writer):
    def _count(self, table: str) -> int:
        self.cursor.execute(f"SELECT count(*) FROM (SELECT 1 FROM {table} LIMIT 1)")  # noqa: S608
        return int(self.cursor.fetchone()[0])

    def refuse_unless_empty(self) -> None:
        if self._count(self.table) or self._count(KEYS_TABLE):
            raise BackupError("the store is not empty: import only into an empty store")

    def events(self, rows: list[tuple[int, UUID, int, str, bytes]]) -> None:
        self.cursor.executemany(
            f"INSERT INTO {self.table} (rowid, originator_id, originator_version, topic, state) "  # noqa: S608
            "VALUES (?, ?, ?, ?, ?)",
            [(p, s.hex, v, t, st) for p, s, v, t, st in rows],
        )

    def case_keys(self, rows: list[tuple[Any, ...]]) -> None:
        self.cursor.executemany(
            f"INSERT INTO {KEYS_TABLE} ({', '.join(KEY_COLUMNS)}) VALUES (?, ?, ?, ?, ?)",  # noqa: S608
            rows,
        )


class _PostgresWriter(_Writer):
    @property
    def schema(self) -> Identifier:
        assert isinstance(self.recorder, PostgresApplicationRecorder)  # noqa: S101
        return Identifier(self.recorder.datastore.schema)

    def refuse_unless_empty(self) -> None:
        # Nothing may append meanwhile: the lock every append takes, held to the commit.
        self.cursor.execute(
            SQL("LOCK TABLE {}.{} IN EXCLUSIVE MODE").format(self.schema, Identifier(self.table))
        )
        for table in (self.table, KEYS_TABLE):
            self.cursor.execute(
                SQL("SELECT EXISTS (SELECT 1 FROM {}.{})").format(self.schema, Identifier(table))
            )
            if self.cursor.fetchone()[0]:
                raise BackupError("the store is not empty: import only into an empty store")

    def events(self, rows: list[tuple[int, UUID, int, str, bytes]]) -> None:
        if rows:
            self.cursor.executemany(
                SQL(
                    "INSERT INTO {}.{} (notification_id, originator_id, originator_version, "
                    "topic, state) VALUES (%s, %s, %s, %s, %s)"
                ).format(self.schema, Identifier(self.table)),
                rows,
            )

    def case_keys(self, rows: list[tuple[Any, ...]]) -> None:
        if rows:
            self.cursor.executemany(
                SQL("INSERT INTO {}.{} ({}) VALUES (%s, %s, %s, %s, %s)").format(
                    self.schema,
                    Identifier(KEYS_TABLE),
                    SQL(", ").join(map(Identifier, KEY_COLUMNS)),
                ),
                rows,
            )

    def after_load(self, last_position: int) -> None:
        """The next append continues after the imported positions."""
        if last_position:
            self.cursor.execute(
                "SELECT setval(pg_get_serial_sequence(%s, 'notification_id'), %s)",
                (f'"{self.recorder.datastore.schema}".{self.table}', last_position),  # type: ignore[attr-defined]
            )


@contextmanager
def _writer(recorder: ApplicationRecorder) -> Iterator[_Writer]:
    """A writer in one transaction: committed when the block ends, rolled back on an error."""
    if isinstance(recorder, SQLiteApplicationRecorder):
        with recorder.datastore.transaction(commit=True) as curs:
            yield _SqliteWriter(curs.sqlite_cursor, recorder)
        return
    if isinstance(recorder, PostgresApplicationRecorder):
        with (
            recorder.datastore.get_connection() as conn,
            conn.transaction(),
            conn.cursor(row_factory=tuple_row) as cur,
        ):
            yield _PostgresWriter(cur, recorder)
        return
    raise BackupError(f"cannot import into {type(recorder).__name__}")
