"""The integrity read model: a Merkle leaf per event of the log, and signed tree heads.

It consumes the log in order like every read model, but reads the stored bytes
(`Change.notification`), never the decoded event: each event's leaf is
`chain.event_leaf_hash(position, chain.event_hash(...))` over exactly what is stored.

* `merkle_leaves(leaf_index, position, originator_id, version, topic, leaf_hash)`: leaf `i` is
  the `i`-th event of the log; the case and version say which event, for verification reports.
* `tree_heads(tree_size, root_hash, signed_at, key_id, signature, position)`: a signed tree head
  (`adapters.integrity.tree_head`) every `every` leaves or `minutes` of log time, whichever
  comes first, and one at the first leaf. Log time is the events' own timestamps, never the
  wall clock, and Ed25519 signatures are deterministic, so a rebuild with the same signing key
  and schedule writes the same rows. Without a signing key no head is signed.

The signing key and schedule come from the environment (REFERRAL_SIGNING_KEY or
REFERRAL_SIGNING_KEY_FILE, REFERRAL_CHECKPOINT_EVERY, REFERRAL_CHECKPOINT_MINUTES), like the
other read models' settings, so every process that builds the read models signs the same heads;
the API and the CLI `configure` it from their settings (development keys on SQLite).

The tree is kept in memory (about 64 bytes a leaf) and loaded from `merkle_leaves` when the
worker starts, or when a batch finds the table moved on without it (another worker, a rolled
back batch, a swapped-in rebuild). A rebuild checks its tree against every live signed head as
it passes that head's size, and stops if the log no longer matches one: a rebuild never signs
over a changed log.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar

from adapters.integrity.chain import event_hash, event_leaf_hash
from adapters.integrity.merkle import MerkleTree
from adapters.integrity.tree_head import (
    SignedTreeHead,
    TreeHeadSigner,
    load_signing_key,
    load_signing_key_from_file,
)
from adapters.integrity.verify import LeafRow, case_text
from projections.base import Change, Index, Projection
from projections.db import Row, Tx

SIGNING_KEY_SETTING = "REFERRAL_SIGNING_KEY"
SIGNING_KEY_FILE_SETTING = "REFERRAL_SIGNING_KEY_FILE"
EVERY_SETTING = "REFERRAL_CHECKPOINT_EVERY"
MINUTES_SETTING = "REFERRAL_CHECKPOINT_MINUTES"
LEAVES = "merkle_leaves"
HEADS = "tree_heads"
DEFAULT_EVERY = 1000
DEFAULT_MINUTES = 10.0
LEAF_PAGE = 50_000
LEAF_COLUMNS = "leaf_index, position, originator_id, version, leaf_hash"


class LogChangedError(RuntimeError):
    """A rebuild met a log that no longer matches a signed tree head."""


def schedule_from_env(
    env: Mapping[str, str] | None = None,
) -> tuple[TreeHeadSigner | None, int, float]:
    """(signer, every, minutes) from REFERRAL_SIGNING_KEY[_FILE] and REFERRAL_CHECKPOINT_*.

    Like the other read models' settings, these come from the environment, so every process
    that builds the read models (the API, `referral projections …`) signs the same heads.
    """
    env = os.environ if env is None else env
    signer = None
    if env.get(SIGNING_KEY_SETTING, "").strip():
        signer = TreeHeadSigner(load_signing_key(env[SIGNING_KEY_SETTING]))
    elif env.get(SIGNING_KEY_FILE_SETTING, "").strip():
        signer = TreeHeadSigner(load_signing_key_from_file(env[SIGNING_KEY_FILE_SETTING]))
    try:
        every = int(env.get(EVERY_SETTING, DEFAULT_EVERY))
        minutes = float(env.get(MINUTES_SETTING, DEFAULT_MINUTES))
    except ValueError:
        raise ValueError(f"{EVERY_SETTING} and {MINUTES_SETTING} must be numbers") from None
    return signer, every, minutes


@dataclass
class _Tree:
    """The in-memory state of one set of tables (live, or a rebuild's)."""

    tree: MerkleTree
    last_position: int
    head_size: int
    head_time: datetime | None
    tx: object | None = None
    live_heads: list[tuple[int, bytes]] = field(default_factory=list)


LEAF_INSERT_COLUMNS = ("leaf_index", "position", "originator_id", "version", "topic", "leaf_hash")


class IntegrityProjection(Projection):
    name = "integrity"
    reads_cases = False
    tables: ClassVar[dict[str, str]] = {
        LEAVES: "leaf_index BIGINT PRIMARY KEY, position BIGINT NOT NULL, "
        "originator_id TEXT NOT NULL, version BIGINT NOT NULL, topic TEXT NOT NULL, "
        "leaf_hash TEXT NOT NULL",
        HEADS: "tree_size BIGINT PRIMARY KEY, root_hash TEXT NOT NULL, signed_at TEXT NOT NULL, "
        "key_id TEXT NOT NULL, signature TEXT NOT NULL, position BIGINT NOT NULL",
    }
    indexes = (
        Index("merkle_leaves_by_position", LEAVES, "position", unique=True),
        Index("merkle_leaves_by_case", LEAVES, "originator_id, version"),
    )

    def __init__(self) -> None:
        """Configured from the environment (see `schedule_from_env`); `configure` overrides."""
        self._states: dict[str, _Tree] = {}
        signer, every, minutes = schedule_from_env()
        self.configure(signer, every=every, minutes=minutes)

    def configure(
        self,
        signer: TreeHeadSigner | None,
        *,
        every: int = DEFAULT_EVERY,
        minutes: float = DEFAULT_MINUTES,
    ) -> None:
        if every < 1 or minutes <= 0:
            raise ValueError("tree heads need a positive interval")
        self.signer = signer
        self.every = every
        self.period = timedelta(minutes=minutes)

    def handle(self, tx: Tx, change: Change, suffix: str = "") -> None:
        self.handle_batch(tx, [change], suffix)

    def handle_batch(self, tx: Tx, changes: Sequence[Change], suffix: str = "") -> None:
        """Append each change's leaf to the tree, signing heads as due; one insert of leaves."""
        if not changes:
            return
        state = self._state(tx, suffix)
        leaves: list[Row] = []
        for change in changes:
            stored = change.notification
            if stored is None:
                raise ValueError("the integrity read model needs each change's stored event")
            digest = event_hash(
                stored.originator_id, stored.originator_version, stored.topic, stored.state
            )
            leaf = event_leaf_hash(stored.id, digest)
            index = state.tree.append(leaf)
            state.last_position = stored.id
            leaves.append(
                (
                    index,
                    stored.id,
                    case_text(stored.originator_id),
                    stored.originator_version,
                    stored.topic,
                    leaf.hex(),
                )
            )
            if state.live_heads:
                self._check_live_heads(state)
            self._maybe_sign(tx, state, change, suffix)
        tx.insert_rows(f"{LEAVES}{suffix}", LEAF_INSERT_COLUMNS, leaves)

    # -- state -------------------------------------------------------------------------------

    def _state(self, tx: Tx, suffix: str) -> _Tree:
        state = self._states.get(suffix)
        if state is not None and state.tx is tx:
            return state
        last = tx.fetchone(
            f"SELECT leaf_index, position FROM {LEAVES}{suffix} ORDER BY leaf_index DESC LIMIT 1"
        )
        expected = (
            None
            if state is None or not state.tree.size
            else (
                state.tree.size - 1,
                state.last_position,
            )
        )
        found = None if last is None else (int(last[0]), int(last[1]))
        if state is None or found != expected:
            state = self._load(tx, suffix)
        head = last_head(tx, suffix)
        state.head_size, state.head_time = (0, None) if head is None else head
        state.tx = tx
        self._states[suffix] = state
        return state

    def _load(self, tx: Tx, suffix: str) -> _Tree:
        tree = MerkleTree(leaf.leaf_hash for leaf in iter_leaves(tx, suffix))
        last = tx.fetchone(
            f"SELECT position FROM {LEAVES}{suffix} ORDER BY leaf_index DESC LIMIT 1"
        )
        state = _Tree(tree, 0 if last is None else int(last[0]), 0, None)
        if suffix:
            self.create(tx)
            live = [(h.tree_size, h.root_hash) for h in signed_heads(tx)]
            state.live_heads = sorted(h for h in live if h[0] > tree.size)
            self._check_live_heads(state)
        return state

    @staticmethod
    def _check_live_heads(state: _Tree) -> None:
        while state.live_heads and state.live_heads[0][0] <= state.tree.size:
            size, root = state.live_heads.pop(0)
            if state.tree.root(size) != root:
                raise LogChangedError(
                    f"the log no longer matches the signed tree head of size {size}"
                )

    def _maybe_sign(self, tx: Tx, state: _Tree, change: Change, suffix: str) -> None:
        if self.signer is None:
            return
        when = getattr(change.event, "timestamp", None)
        if not isinstance(when, datetime):
            return
        size = state.tree.size
        due = (
            state.head_time is None
            or size - state.head_size >= self.every
            or when - state.head_time >= self.period
        )
        if not due:
            return
        head = self.signer.sign(size, state.tree.root(), when)
        tx.execute(
            f"INSERT INTO {HEADS}{suffix} (tree_size, root_hash, signed_at, key_id, signature, "
            "position) VALUES (?, ?, ?, ?, ?, ?)",
            (
                head.tree_size,
                head.root_hash.hex(),
                head.timestamp.isoformat(),
                head.key_id,
                head.signature.hex(),
                state.last_position,
            ),
        )
        state.head_size, state.head_time = size, head.timestamp


# -- reading the tables ------------------------------------------------------------------------


def iter_leaves(
    tx: Tx, suffix: str = "", *, upto_index: int | None = None, page: int = LEAF_PAGE
) -> Iterator[LeafRow]:
    """Every stored leaf in order (up to `upto_index` when given)."""
    after = -1
    while True:
        rows = tx.fetchall(
            f"SELECT {LEAF_COLUMNS} FROM {LEAVES}{suffix} "
            "WHERE leaf_index > ? ORDER BY leaf_index LIMIT ?",
            (after, page),
        )
        for row in rows:
            if upto_index is not None and int(row[0]) > upto_index:
                return
            yield leaf_row(row)
        if len(rows) < page:
            return
        after = int(rows[-1][0])


def leaf_row(row: Any) -> LeafRow:
    return LeafRow(row[0], row[1], row[2], row[3], bytes.fromhex(row[4]))


def case_leaves(tx: Tx, case_id: str) -> list[LeafRow]:
    rows = tx.fetchall(
        f"SELECT {LEAF_COLUMNS} FROM {LEAVES} WHERE originator_id = ? ORDER BY version",
        (case_id,),
    )
    return [leaf_row(row) for row in rows]


def leaf_count(tx: Tx) -> tuple[int, int]:
    """(number of leaves, position of the last one)."""
    row = tx.fetchone(
        f"SELECT leaf_index, position FROM {LEAVES} ORDER BY leaf_index DESC LIMIT 1"
    )
    return (0, 0) if row is None else (int(row[0]) + 1, int(row[1]))


def signed_heads(
    tx: Tx, suffix: str = "", *, upto_size: int | None = None
) -> list[SignedTreeHead]:
    rows = tx.fetchall(
        f"SELECT tree_size, root_hash, signed_at, key_id, signature FROM {HEADS}{suffix} "
        "ORDER BY tree_size"
    )
    return [
        SignedTreeHead(
            tree_size=int(row[0]),
            root_hash=bytes.fromhex(row[1]),
            timestamp=datetime.fromisoformat(row[2]),
            key_id=row[3],
            signature=bytes.fromhex(row[4]),
        )
        for row in rows
        if upto_size is None or int(row[0]) <= upto_size
    ]


def last_head(tx: Tx, suffix: str = "") -> tuple[int, datetime] | None:
    row = tx.fetchone(
        f"SELECT tree_size, signed_at FROM {HEADS}{suffix} ORDER BY tree_size DESC LIMIT 1"
    )
    return None if row is None else (int(row[0]), datetime.fromisoformat(row[1]))
