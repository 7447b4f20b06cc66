"""Verify the log: every chain link, every Merkle leaf, every signed tree head, and growth only.

Input is what is stored, read directly (never through the mapper): the events in log order,
the leaves the integrity read model recorded, its signed tree heads, and optionally a head
exported earlier and kept elsewhere. Everything is recomputed from the events with the one
definition in `chain`:

1. Chains: per stream, versions 1..n in log order without gaps, and each event's header names
   the hash of the previous event (zeros for version 1).
2. Leaves: event and leaf are matched by log position; a leaf with no event is a missing event,
   an event with no leaf (before the last leaf) an inserted one, and a different leaf hash a
   changed, swapped or moved event. Events after the last leaf are pending, not broken.
3. Heads: each signed head must verify under the public key, and the root of the recomputed
   tree at its size must equal its root; a re-hashed copy of the whole log, leaves included,
   fails here. Heads are expected at least every `checkpoint_every` leaves.
4. An earlier exported head: the recomputed tree (and the latest signed head) must extend it,
   checked with an RFC 9162 consistency proof.

Findings name the case (stream) and event (version, log position) they concern where the
stored data says which. No message holds a payload.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from adapters.integrity.chain import (
    HEADER_SIZE,
    MAGIC,
    ZERO_HASH,
    event_hash,
    event_hash_from_parts,
    event_leaf_hash,
    stream_prefix,
    topic_part,
)
from adapters.integrity.merkle import MerkleTree, verify_consistency
from adapters.integrity.tree_head import SignedTreeHead, verify_tree_head

__all__ = ["EventRow", "Finding", "LeafRow", "Report", "Verifier", "verify_stream"]


@dataclass(frozen=True, slots=True)
class EventRow:
    """One stored event as the events table holds it."""

    position: int
    stream: UUID | str
    version: int
    topic: str
    state: bytes


@dataclass(frozen=True, slots=True)
class LeafRow:
    """One row of the integrity read model's `merkle_leaves`."""

    leaf_index: int
    position: int
    stream: str
    version: int
    leaf_hash: bytes


@dataclass(frozen=True)
class Finding:
    """One broken link: what kind, which case and event, and a one-line explanation."""

    kind: str
    message: str
    case_id: str | None = None
    version: int | None = None
    position: int | None = None

    def line(self) -> str:
        where = []
        if self.case_id is not None:
            where.append(f"case {self.case_id}")
        if self.version is not None:
            where.append(f"event {self.version}")
        if self.position is not None:
            where.append(f"position {self.position}")
        return f"{self.kind}: {self.message}" + (f" ({', '.join(where)})" if where else "")

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "case_id": self.case_id,
            "version": self.version,
            "position": self.position,
            "message": self.message,
        }


@dataclass
class Report:
    """The outcome: verified up to a position and tree head, or the findings."""

    events: int = 0
    leaves: int = 0
    verified_position: int = 0
    verified_leaves: int = 0
    pending: int = 0
    heads_checked: int = 0
    head: SignedTreeHead | None = None
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    def summary(self) -> str:
        if not self.ok:
            first = self.findings[0].line()
            return f"BROKEN: {len(self.findings)} finding(s); first: {first}"
        head = (
            f"tree head {self.head.tree_size}:{self.head.root_hash.hex()}"
            if self.head is not None
            else "no signed tree head"
        )
        return f"verified up to position {self.verified_position}, {head}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "summary": self.summary(),
            "events": self.events,
            "leaves": self.leaves,
            "verified_position": self.verified_position,
            "verified_leaves": self.verified_leaves,
            "pending_events": self.pending,
            "heads_checked": self.heads_checked,
            "tree_head": None if self.head is None else _head_dict(self.head),
            "findings": [f.as_dict() for f in self.findings],
            "notes": list(self.notes),
        }


def _head_dict(head: SignedTreeHead) -> dict[str, Any]:
    return {
        "tree_size": head.tree_size,
        "root_hash": head.root_hash.hex(),
        "timestamp": head.timestamp.isoformat(),
        "key_id": head.key_id,
        "signature": head.signature.hex(),
    }


def case_text(stream: UUID | str) -> str:
    """A stream id as the API shows it (UUIDs stored as hex on SQLite come back dashed)."""
    if isinstance(stream, UUID):
        return str(stream)
    try:
        return str(UUID(stream))
    except ValueError:
        return stream


class _Leaves:
    """The stored leaves as a cursor the event loop advances by position."""

    def __init__(self, leaves: Iterable[LeafRow]) -> None:
        self._it: Iterator[LeafRow] = iter(leaves)
        self.current: LeafRow | None = next(self._it, None)
        self.count = 0
        self.expected_index = 0

    def advance(self) -> None:
        self.count += 1
        self.expected_index += 1
        self.current = next(self._it, None)


class Verifier:
    """Recomputes the chains, leaves and roots of a log and compares them with what is stored."""

    def __init__(
        self,
        public_key: Ed25519PublicKey | None = None,
        *,
        checkpoint_every: int | None = None,
        max_findings: int = 1000,
    ) -> None:
        self.public_key = public_key
        self.checkpoint_every = checkpoint_every
        self.max_findings = max_findings

    def run(
        self,
        events: Iterable[EventRow],
        leaves: Iterable[LeafRow],
        heads: Sequence[SignedTreeHead] = (),
        earlier: SignedTreeHead | None = None,
    ) -> Report:
        report = Report()
        cursor = _Leaves(leaves)
        computed: list[bytes] = []
        self._events(events, cursor, computed, report)
        tree = MerkleTree.from_leaf_hashes(computed)
        del computed
        self._remaining_leaves(cursor, report)
        report.leaves = cursor.count
        self._heads(heads, tree, report)
        if earlier is not None:
            self._earlier(earlier, tree, report)
        if len(report.findings) > self.max_findings:
            dropped = len(report.findings) - self.max_findings
            report.findings = report.findings[: self.max_findings]
            report.notes.append(f"{dropped} further finding(s) not listed")
        return report

    # -- chains and leaves -------------------------------------------------------------------

    def _events(
        self, events: Iterable[EventRow], cursor: _Leaves, computed: list[bytes], report: Report
    ) -> None:
        """One pass over the log. The common case (link and leaf as expected) takes a short
        path; anything else goes through `_link` and `_leaf`, which say what is wrong."""
        streams: dict[UUID | str, tuple[bytes, int, bytes]] = {}
        topics: dict[str, bytes] = {}
        add = report.findings.append
        append = computed.append
        count = 0
        for e in events:
            count += 1
            stream, version, state = e.stream, e.version, e.state
            known = streams.get(stream)
            prefix = known[0] if known is not None else stream_prefix(stream)
            topic = topics.get(e.topic)
            if topic is None:
                topic = topics[e.topic] = topic_part(e.topic)
            digest = event_hash_from_parts(prefix, version, topic, state)
            link = state[3:HEADER_SIZE]
            linked = state[:3] == MAGIC and (
                (known is None and version == 1 and link == ZERO_HASH)
                or (known is not None and known[1] == version - 1 and known[2] == link)
            )
            if not linked:
                self._link(e, None if known is None else known[1:], add)
            streams[stream] = (prefix, version, digest)
            leaf = event_leaf_hash(e.position, digest)
            append(leaf)
            stored = cursor.current
            if (
                stored is not None
                and stored.position == e.position
                and stored.leaf_hash == leaf
                and stored.leaf_index == cursor.expected_index
            ):
                report.verified_position = e.position
                cursor.advance()
                report.verified_leaves = cursor.count
            else:
                self._leaf(e, leaf, cursor, report)
        report.events = count

    @staticmethod
    def _link(e: EventRow, last: Sequence[Any] | None, add: Any) -> None:
        """Say what is wrong with an event's link; `last` is (version, hash) of the stream."""
        state = e.state
        if len(state) < HEADER_SIZE or state[:3] != MAGIC:
            add(Finding("no-chain-header", "the stored event has no chain header", *_at(e)))
            return
        previous = state[3:HEADER_SIZE]
        if e.version == 1:
            if last is not None:
                add(Finding("duplicate-start", "a second first event", *_at(e)))
            elif previous != ZERO_HASH:
                add(Finding("chain-broken", "a first event names a predecessor", *_at(e)))
            return
        if last is None or last[0] < e.version - 1:
            seen = 0 if last is None else last[0]
            missing = f"{seen + 1}" if seen + 1 == e.version - 1 else f"{seen + 1}-{e.version - 1}"
            add(Finding("missing-event", f"event(s) {missing} of this case are missing", *_at(e)))
            return
        if last[0] >= e.version:
            add(Finding("out-of-order", f"comes after event {last[0]} in the log", *_at(e)))
            return
        if previous != last[1]:
            add(
                Finding(
                    "chain-broken",
                    f"the hash of event {e.version - 1} does not match the link to it",
                    *_at(e),
                )
            )

    @staticmethod
    def _leaf(e: EventRow, leaf: bytes, cursor: _Leaves, report: Report) -> None:
        stored = cursor.current
        add = report.findings.append
        while stored is not None and stored.position < e.position:
            add(
                Finding(
                    "missing-event",
                    "the Merkle tree holds this event; the log does not",
                    case_text(stored.stream),
                    stored.version,
                    stored.position,
                )
            )
            cursor.advance()
            stored = cursor.current
        if stored is None:
            report.pending += 1
            return
        if stored.position > e.position:
            add(Finding("extra-event", "the log holds an event the tree never had", *_at(e)))
            return
        if stored.leaf_index != cursor.expected_index:
            add(
                Finding(
                    "leaf-index",
                    f"leaf {stored.leaf_index} stands where leaf {cursor.expected_index} belongs",
                    *_at(e),
                )
            )
        if stored.leaf_hash != leaf:
            here = _at(e)
            if case_text(stored.stream) != here[0] or stored.version != e.version:
                message = (
                    f"the tree has case {case_text(stored.stream)} event {stored.version} here"
                )
                add(Finding("moved-event", message, *here))
            else:
                add(Finding("changed-event", "the stored bytes differ from the tree", *here))
        else:
            report.verified_position = e.position
            report.verified_leaves = cursor.count + 1
        cursor.advance()

    @staticmethod
    def _remaining_leaves(cursor: _Leaves, report: Report) -> None:
        while cursor.current is not None:
            stored = cursor.current
            report.findings.append(
                Finding(
                    "missing-event",
                    "the Merkle tree holds this event; the log does not",
                    case_text(stored.stream),
                    stored.version,
                    stored.position,
                )
            )
            cursor.advance()

    # -- tree heads --------------------------------------------------------------------------

    def _heads(self, heads: Sequence[SignedTreeHead], tree: MerkleTree, report: Report) -> None:
        if self.public_key is None:
            report.notes.append("no signing key configured: signed tree heads not checked")
            return
        good: SignedTreeHead | None = None
        last_good_size = 0
        previous_size = 0
        for head in sorted(heads, key=lambda h: h.tree_size):
            report.heads_checked += 1
            if not verify_tree_head(head, self.public_key):
                report.findings.append(
                    Finding("bad-signature", f"tree head {head.tree_size} is not validly signed")
                )
                continue
            if self.checkpoint_every and head.tree_size - previous_size > self.checkpoint_every:
                report.findings.append(
                    Finding(
                        "missing-tree-head",
                        f"no signed tree head between sizes {previous_size} and {head.tree_size}",
                    )
                )
            previous_size = head.tree_size
            if head.tree_size > tree.size:
                report.findings.append(
                    Finding(
                        "truncated",
                        f"tree head {head.tree_size} signs more events than the log has "
                        f"({tree.size})",
                    )
                )
                continue
            if tree.root(head.tree_size) != head.root_hash:
                report.findings.append(
                    Finding(
                        "tree-head-mismatch",
                        f"the log's first {head.tree_size} events do not match their signed "
                        f"tree head; the first difference is after leaf {last_good_size}",
                    )
                )
                continue
            good, last_good_size = head, head.tree_size
        if (
            self.checkpoint_every
            and report.leaves - previous_size >= self.checkpoint_every
            and report.leaves > 0
        ):
            report.findings.append(
                Finding(
                    "missing-tree-head",
                    f"the last signed tree head covers {previous_size} of {report.leaves} leaves",
                )
            )
        report.head = good

    def _earlier(self, earlier: SignedTreeHead, tree: MerkleTree, report: Report) -> None:
        add = report.findings.append
        if self.public_key is not None and not verify_tree_head(earlier, self.public_key):
            add(Finding("bad-signature", "the exported tree head is not validly signed"))
            return
        if earlier.tree_size > tree.size:
            add(
                Finding(
                    "truncated",
                    f"the log has {tree.size} events, fewer than the exported head's "
                    f"{earlier.tree_size}",
                )
            )
            return
        proof = tree.consistency_proof(earlier.tree_size, tree.size)
        if not verify_consistency(
            earlier.tree_size, tree.size, earlier.root_hash, tree.root(), proof
        ):
            add(
                Finding(
                    "not-an-extension",
                    f"the log is not an extension of the exported head {earlier.tree_size}",
                )
            )
            return
        latest = report.head
        if latest is not None and latest.tree_size >= earlier.tree_size:
            proof = tree.consistency_proof(earlier.tree_size, latest.tree_size)
            if not verify_consistency(
                earlier.tree_size, latest.tree_size, earlier.root_hash, latest.root_hash, proof
            ):
                add(
                    Finding(
                        "not-an-extension",
                        f"signed head {latest.tree_size} does not extend the exported head",
                    )
                )
                return
        report.notes.append(
            f"the log only grew since the exported head {earlier.tree_size} "
            f"(consistency proof of {len(proof)} hashes)"
        )


def _at(e: EventRow) -> tuple[str, int, int]:
    return case_text(e.stream), e.version, e.position


def verify_stream(events: Sequence[EventRow], leaves: Sequence[LeafRow]) -> dict[int, bool | None]:
    """Per event of one stream: True when its chain link holds and its leaf matches.

    False when either is broken; None when the link holds but no leaf was recorded yet.
    """
    by_version = {leaf.version: leaf for leaf in leaves}
    result: dict[int, bool | None] = {}
    last: tuple[int, bytes] | None = None
    for e in sorted(events, key=lambda row: row.version):
        findings: list[Finding] = []
        Verifier._link(e, last, findings.append)
        digest = event_hash(e.stream, e.version, e.topic, e.state)
        last = (e.version, digest)
        leaf = by_version.get(e.version)
        if findings:
            result[e.version] = False
        elif leaf is None:
            result[e.version] = None
        else:
            result[e.version] = leaf.position == e.position and leaf.leaf_hash == event_leaf_hash(
                e.position, digest
            )
    return result
