"""Verification runs: the whole log, one case's events, and a tree head to hand to a witness.

The events are read straight from the events table (`adapters.integrity.log_reader`), the
leaves and heads from the integrity read model, each in short transactions. The leaf count and
the heads are read together first, so events appended while the log is verified only add
pending events, never false findings.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from uuid import UUID

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from adapters.integrity.log_reader import iter_events, stream_events
from adapters.integrity.merkle import MerkleTree
from adapters.integrity.tree_head import SignedTreeHead, TreeHeadSigner
from adapters.integrity.verify import LeafRow, Report, Verifier, verify_stream
from projections.db import PostgresDatabase, SqliteDatabase
from projections.integrity import (
    LEAF_COLUMNS,
    LEAF_PAGE,
    LEAVES,
    IntegrityProjection,
    case_leaves,
    leaf_count,
    signed_heads,
)
from referral_core.application import ReferralApplication

Database = SqliteDatabase | PostgresDatabase


def paged_leaves(db: Database, *, upto_index: int, page: int = LEAF_PAGE) -> Iterator[LeafRow]:
    """The stored leaves 0..upto_index, a page per transaction."""
    after = -1
    while after < upto_index:
        with db.transaction() as tx:
            rows = tx.fetchall(
                f"SELECT {LEAF_COLUMNS} FROM {LEAVES} "
                "WHERE leaf_index > ? AND leaf_index <= ? ORDER BY leaf_index LIMIT ?",
                (after, upto_index, page),
            )
        if not rows:
            return
        for row in rows:
            yield LeafRow(
                int(row[0]), int(row[1]), str(row[2]), int(row[3]), bytes.fromhex(row[4])
            )
        after = int(rows[-1][0])


def verify_log(
    app: ReferralApplication,
    db: Database,
    *,
    public_key: Ed25519PublicKey | None,
    checkpoint_every: int | None,
    earlier: SignedTreeHead | None = None,
) -> Report:
    """Recompute everything from the events table and compare it with what is stored."""
    with db.transaction() as tx:
        IntegrityProjection().create(tx)
        leaves, _position = leaf_count(tx)
        heads = signed_heads(tx)
    verifier = Verifier(public_key, checkpoint_every=checkpoint_every)
    return verifier.run(
        iter_events(app.recorder),
        paged_leaves(db, upto_index=leaves - 1),
        heads,
        earlier,
    )


def verify_case(app: ReferralApplication, db: Database, case_id: UUID) -> dict[int, bool | None]:
    """Per version of one case: chain link and leaf verified (True), broken (False), or None."""
    events = stream_events(app.recorder, case_id)
    with db.transaction() as tx:
        IntegrityProjection().create(tx)
        leaves = case_leaves(tx, str(case_id))
    return verify_stream(events, leaves)


def current_head(db: Database, signer: TreeHeadSigner, now: datetime) -> SignedTreeHead:
    """The latest signed head if it covers every leaf, else a head signed now over them all."""
    with db.transaction() as tx:
        IntegrityProjection().create(tx)
        size, _position = leaf_count(tx)
        heads = signed_heads(tx)
    if heads and heads[-1].tree_size == size and heads[-1].key_id == signer.key_id:
        return heads[-1]
    tree = MerkleTree(leaf.leaf_hash for leaf in paged_leaves(db, upto_index=size - 1))
    return signer.sign(tree.size, tree.root(), now)
