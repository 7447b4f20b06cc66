"""The hash chain, the Merkle leaves and the verifier, on logs built in memory."""

from __future__ import annotations

import hashlib
import struct
from datetime import UTC, datetime
from uuid import UUID, uuid4

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from eventsourcing.persistence import StoredEvent

from adapters.integrity.chain import (
    HEADER_SIZE,
    MAGIC,
    ZERO_HASH,
    ChainHeaderError,
    event_hash,
    event_leaf_hash,
    id_bytes,
    split_header,
    with_header,
)
from adapters.integrity.merkle import MerkleTree, leaf_hash
from adapters.integrity.recorders import ChainMemory, chain_batch
from adapters.integrity.tree_head import SignedTreeHead, TreeHeadSigner
from adapters.integrity.verify import EventRow, LeafRow, Verifier, verify_stream

CASE_A = UUID("00000000-0000-4000-8000-00000000000a")
CASE_B = UUID("00000000-0000-4000-8000-00000000000b")
WHEN = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


# -- the definitions ---------------------------------------------------------------------------


def test_event_hash_follows_the_documented_encoding() -> None:
    state = with_header(ZERO_HASH, b'{"x":1}')
    topic = "referral.case:Something"
    expected = hashlib.sha256(
        b"referral-event-v1\x00"
        + struct.pack(">I", 17)
        + b"u"
        + CASE_A.bytes
        + struct.pack(">Q", 1)
        + struct.pack(">I", len(topic))
        + topic.encode()
        + struct.pack(">Q", len(state))
        + state
    ).digest()
    assert event_hash(CASE_A, 1, topic, state) == expected


def test_a_uuid_and_its_stored_hex_hash_alike() -> None:
    assert id_bytes(CASE_A) == id_bytes(CASE_A.hex) == b"u" + CASE_A.bytes
    assert id_bytes("not-a-uuid") == b"snot-a-uuid"
    assert event_hash(CASE_A, 3, "t", b"s") == event_hash(CASE_A.hex, 3, "t", b"s")


@pytest.mark.parametrize(
    "other",
    [
        (CASE_B, 1, "t", b"state"),
        (CASE_A, 2, "t", b"state"),
        (CASE_A, 1, "u", b"state"),
        (CASE_A, 1, "t", b"statE"),
        (CASE_A, 1, "ts", b"tate"),  # moving a byte between topic and state
    ],
)
def test_every_field_and_boundary_changes_the_hash(other: tuple[UUID, int, str, bytes]) -> None:
    assert event_hash(CASE_A, 1, "t", b"state") != event_hash(*other)


def test_header_round_trip_and_refusals() -> None:
    previous = bytes(range(32))
    state = with_header(previous, b"body")
    assert state[:3] == MAGIC
    assert len(state) == HEADER_SIZE + 4
    assert split_header(state) == (previous, b"body")
    with pytest.raises(ChainHeaderError):
        split_header(b'{"plain": true}')
    with pytest.raises(ValueError, match="32 bytes"):
        with_header(b"short", b"body")


def test_the_leaf_binds_the_position() -> None:
    digest = event_hash(CASE_A, 1, "t", b"s")
    assert event_leaf_hash(7, digest) == leaf_hash(
        b"referral-leaf-v1\x00" + struct.pack(">Q", 7) + digest
    )
    assert event_leaf_hash(7, digest) != event_leaf_hash(8, digest)


# -- the writer's batch ------------------------------------------------------------------------


def _stored(case: UUID, version: int, body: bytes = b"{}") -> StoredEvent:
    return StoredEvent(originator_id=case, originator_version=version, topic="t", state=body)


def test_a_batch_links_to_the_stored_row_and_within_itself() -> None:
    earlier = with_header(ZERO_HASH, b"v4")
    asked: list[list[tuple[UUID | str, int]]] = []

    def previous(
        keys: list[tuple[UUID | str, int]],
    ) -> dict[tuple[UUID | str, int], tuple[str, bytes]]:
        asked.append(keys)
        return {(CASE_A, 4): ("t", earlier)}

    batch, hashes = chain_batch(
        [_stored(CASE_A, 5), _stored(CASE_A, 6), _stored(CASE_B, 1)], previous
    )
    assert asked == [[(CASE_A, 4)]]
    assert hashes[(CASE_A, 6)] == event_hash(CASE_A, 6, "t", batch[1].state)
    assert split_header(batch[0].state)[0] == event_hash(CASE_A, 4, "t", earlier)
    assert split_header(batch[1].state)[0] == event_hash(CASE_A, 5, "t", batch[0].state)
    assert split_header(batch[2].state)[0] == ZERO_HASH
    assert [split_header(s.state)[1] for s in batch] == [b"{}", b"{}", b"{}"]


def test_a_missing_predecessor_links_to_zeros_for_the_verifier_to_report() -> None:
    batch, _ = chain_batch([_stored(CASE_A, 3)], lambda _keys: {})
    assert split_header(batch[0].state)[0] == ZERO_HASH


def test_a_recorder_links_to_what_it_committed_without_reading_it_again() -> None:
    memory = ChainMemory(size=2)
    first, hashes = chain_batch([_stored(CASE_A, 1), _stored(CASE_A, 2)], lambda _keys: {})
    memory.committed(hashes)

    def unexpected(
        keys: list[tuple[UUID | str, int]],
    ) -> dict[tuple[UUID | str, int], tuple[str, bytes]]:
        raise AssertionError(f"read {keys} again")

    second, _ = chain_batch([_stored(CASE_A, 3)], unexpected, memory)
    assert split_header(second[0].state)[0] == event_hash(CASE_A, 2, "t", first[1].state)
    # another version than the one remembered: read from the store
    asked: list[list[tuple[UUID | str, int]]] = []

    def previous(
        keys: list[tuple[UUID | str, int]],
    ) -> dict[tuple[UUID | str, int], tuple[str, bytes]]:
        asked.append(keys)
        return {}

    chain_batch([_stored(CASE_A, 5)], previous, memory)
    assert asked == [[(CASE_A, 4)]]
    memory.committed({(CASE_B, 1): ZERO_HASH, (uuid4(), 1): ZERO_HASH})
    assert memory.get((CASE_A, 2)) is None  # the oldest stream was forgotten


# -- a log in memory ---------------------------------------------------------------------------


def build_log(streams: dict[UUID, int]) -> list[EventRow]:
    """Events of several streams interleaved, chained as the recorder chains them."""
    rows: list[EventRow] = []
    last: dict[UUID, bytes] = {}
    position = 0
    for version in range(1, max(streams.values()) + 1):
        for stream, count in streams.items():
            if version > count:
                continue
            position += 1
            state = with_header(last.get(stream, ZERO_HASH), f'{{"n":{position}}}'.encode())
            last[stream] = event_hash(stream, version, "t", state)
            rows.append(EventRow(position, stream, version, "t", state))
    return rows


def leaves_of(rows: list[EventRow]) -> list[LeafRow]:
    return [LeafRow(i, r.position, str(r.stream), r.version, _leaf(r)) for i, r in enumerate(rows)]


def _leaf(r: EventRow) -> bytes:
    return event_leaf_hash(r.position, event_hash(r.stream, r.version, r.topic, r.state))


def heads_of(rows: list[EventRow], signer: TreeHeadSigner, every: int) -> list[SignedTreeHead]:
    tree = MerkleTree(leaf.leaf_hash for leaf in leaves_of(rows))
    return [signer.sign(n, tree.root(n), WHEN) for n in range(every, tree.size + 1, every)]


@pytest.fixture
def signer() -> TreeHeadSigner:
    return TreeHeadSigner(Ed25519PrivateKey.generate())


@pytest.fixture
def log() -> list[EventRow]:
    return build_log({CASE_A: 6, CASE_B: 4})


def run(
    rows: list[EventRow],
    leaves: list[LeafRow],
    signer: TreeHeadSigner,
    heads: list[SignedTreeHead] | None = None,
    earlier: SignedTreeHead | None = None,
) -> tuple[bool, list[tuple[str, str | None, int | None]]]:
    report = Verifier(signer.public_key, checkpoint_every=4).run(
        rows, leaves, heads if heads is not None else [], earlier
    )
    return report.ok, [(f.kind, f.case_id, f.version) for f in report.findings]


def test_an_untouched_log_verifies(log: list[EventRow], signer: TreeHeadSigner) -> None:
    heads = heads_of(log, signer, 4)
    report = Verifier(signer.public_key, checkpoint_every=4).run(log, leaves_of(log), heads)
    assert report.ok, report.findings
    assert report.verified_position == log[-1].position
    assert report.head is not None
    assert report.head.tree_size == 8
    assert report.summary().startswith(f"verified up to position {log[-1].position}, tree head 8:")


def test_a_changed_byte_names_its_case_and_event(
    log: list[EventRow], signer: TreeHeadSigner
) -> None:
    leaves, heads = leaves_of(log), heads_of(log, signer, 4)
    target = next(r for r in log if r.stream == CASE_A and r.version == 3)
    changed = bytearray(target.state)
    changed[-2] ^= 1
    tampered = [
        EventRow(r.position, r.stream, r.version, r.topic, bytes(changed)) if r is target else r
        for r in log
    ]
    ok, findings = run(tampered, leaves, signer, heads)
    assert not ok
    assert ("changed-event", str(CASE_A), 3) in findings
    assert ("chain-broken", str(CASE_A), 4) in findings


def test_a_deleted_event_names_its_case_and_event(
    log: list[EventRow], signer: TreeHeadSigner
) -> None:
    leaves = leaves_of(log)
    tampered = [r for r in log if not (r.stream == CASE_B and r.version == 2)]
    ok, findings = run(tampered, leaves, signer)
    assert not ok
    assert ("missing-event", str(CASE_B), 2) in findings


def test_a_deleted_case_names_every_event(log: list[EventRow], signer: TreeHeadSigner) -> None:
    ok, findings = run([r for r in log if r.stream != CASE_B], leaves_of(log), signer)
    assert not ok
    assert {f for f in findings if f[1] == str(CASE_B)} == {
        ("missing-event", str(CASE_B), v) for v in range(1, 5)
    }


def test_reordering_shows_leaves_at_the_wrong_positions(
    log: list[EventRow], signer: TreeHeadSigner
) -> None:
    a, b = log[2], log[5]
    swapped = {a.position: b, b.position: a}
    tampered = [
        EventRow(
            r.position,
            swapped[r.position].stream,
            swapped[r.position].version,
            swapped[r.position].topic,
            swapped[r.position].state,
        )
        if r.position in swapped
        else r
        for r in log
    ]
    ok, findings = run(tampered, leaves_of(log), signer)
    assert not ok
    assert ("moved-event", str(b.stream), b.version) in findings
    assert ("moved-event", str(a.stream), a.version) in findings


def test_a_truncated_tail_is_missing_events_and_a_head_too_large(
    log: list[EventRow], signer: TreeHeadSigner
) -> None:
    heads = heads_of(log, signer, 4)
    ok, findings = run(log[:-3], leaves_of(log), signer, heads)
    assert not ok
    assert {("missing-event", str(r.stream), r.version) for r in log[-3:]} <= set(findings)
    # the leaves cut too: only the signed head of size 8 knows
    ok, findings = run(log[:-3], leaves_of(log)[:-3], signer, heads)
    assert not ok
    assert ("truncated", None, None) in findings


def test_a_rehashed_copy_is_caught_only_by_the_signed_head(
    log: list[EventRow], signer: TreeHeadSigner
) -> None:
    heads = heads_of(log, signer, 4)
    edited = {2: b'{"n":"forged"}'}
    forged = build_log({CASE_A: 6, CASE_B: 4})
    rebuilt: list[EventRow] = []
    last: dict[UUID | str, bytes] = {}
    for r in forged:
        body = edited.get(r.position, r.state[HEADER_SIZE:])
        state = with_header(last.get(r.stream, ZERO_HASH), body)
        last[r.stream] = event_hash(r.stream, r.version, "t", state)
        rebuilt.append(EventRow(r.position, r.stream, r.version, "t", state))
    ok, findings = run(rebuilt, leaves_of(rebuilt), signer, heads)
    assert not ok
    assert [f[0] for f in findings] == ["tree-head-mismatch", "tree-head-mismatch"]


def test_heads_must_be_signed_by_the_key_and_not_missing(
    log: list[EventRow], signer: TreeHeadSigner
) -> None:
    stranger = TreeHeadSigner(Ed25519PrivateKey.generate())
    ok, findings = run(log, leaves_of(log), signer, heads_of(log, stranger, 4))
    assert not ok
    assert ("bad-signature", None, None) in findings
    ok, findings = run(log, leaves_of(log), signer, [])
    assert ("missing-tree-head", None, None) in findings


def test_pending_events_after_the_last_leaf_are_not_broken(
    log: list[EventRow], signer: TreeHeadSigner
) -> None:
    leaves = leaves_of(log)[:8]
    report = Verifier(signer.public_key).run(log, leaves, [])
    assert report.ok
    assert report.pending == len(log) - 8
    assert report.verified_position == log[7].position


def test_an_exported_head_proves_the_log_only_grew(signer: TreeHeadSigner) -> None:
    early = build_log({CASE_A: 3, CASE_B: 2})
    tree = MerkleTree(leaf.leaf_hash for leaf in leaves_of(early))
    exported = SignedTreeHead.from_json(signer.sign(tree.size, tree.root(), WHEN).to_json())
    grown = early + _continue(early, {CASE_A: 2, CASE_B: 1})
    report = Verifier(signer.public_key).run(grown, leaves_of(grown), [], exported)
    assert report.ok, report.findings
    assert any("only grew" in note for note in report.notes)
    truncated = early[:-1]
    report = Verifier(signer.public_key).run(truncated, leaves_of(truncated), [], exported)
    assert not report.ok
    assert report.findings[0].kind == "truncated"
    edited = [*early[:-1], EventRow(*_fields(early[-1])[:4], early[-1].state + b" "), *grown[5:]]
    report = Verifier(signer.public_key).run(edited, leaves_of(edited), [], exported)
    assert not report.ok
    assert report.findings[-1].kind == "not-an-extension"


def _fields(r: EventRow) -> tuple[int, UUID | str, int, str, bytes]:
    return r.position, r.stream, r.version, r.topic, r.state


def _continue(rows: list[EventRow], more: dict[UUID, int]) -> list[EventRow]:
    last: dict[UUID | str, tuple[int, bytes]] = {}
    for r in rows:
        last[r.stream] = (r.version, event_hash(r.stream, r.version, r.topic, r.state))
    out: list[EventRow] = []
    position = rows[-1].position
    for stream, count in more.items():
        version, digest = last[stream]
        for _ in range(count):
            version += 1
            position += 1
            state = with_header(digest, b'{"more":true}')
            digest = event_hash(stream, version, "t", state)
            out.append(EventRow(position, stream, version, "t", state))
    return out


def test_one_stream_verifies_event_by_event(log: list[EventRow]) -> None:
    rows = [r for r in log if r.stream == CASE_A]
    leaves = [leaf for leaf in leaves_of(log) if leaf.stream == str(CASE_A)]
    assert verify_stream(rows, leaves) == dict.fromkeys(range(1, 7), True)
    assert verify_stream(rows, leaves[:4])[6] is None
    broken = [
        EventRow(r.position, r.stream, r.version, r.topic, r.state + b" ") if r.version == 2 else r
        for r in rows
    ]
    result = verify_stream(broken, leaves)
    assert result[2] is False
    assert result[3] is False  # the link from 3 back to the changed 2 breaks
    assert result[1] is True
    assert result[4] is True


def test_findings_name_no_payload(log: list[EventRow], signer: TreeHeadSigner) -> None:
    tampered = [r for r in log if r.version != 2]
    report = Verifier(signer.public_key).run(tampered, leaves_of(log), [])
    text = "\n".join(f.line() for f in report.findings)
    assert '"n"' not in text
    assert uuid4().hex not in text


@pytest.mark.parametrize("size", [*range(40), 255, 256, 257, 1000])
def test_a_tree_built_a_level_at_a_time_is_the_same_tree(size: int) -> None:
    leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(size)]
    one_by_one, batch = MerkleTree(leaves), MerkleTree.from_leaf_hashes(leaves)
    assert batch.size == one_by_one.size == size
    assert batch.root() == one_by_one.root()
    for n in range(0, size + 1, max(1, size // 7)):
        assert batch.root(n) == one_by_one.root(n)
        assert batch.consistency_proof(n, size) == one_by_one.consistency_proof(n, size)
        if n < size:
            assert batch.inclusion_proof(n, size) == one_by_one.inclusion_proof(n, size)
    batch.append(leaf_hash(b"next"))
    one_by_one.append(leaf_hash(b"next"))
    assert batch.root() == one_by_one.root()
