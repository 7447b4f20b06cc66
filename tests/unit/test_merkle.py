"""RFC 6962 / RFC 9162 Merkle trees: known answers, proofs, tampering and properties."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.integrity.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    MerkleTree,
    leaf_hash,
    merkle_root,
    node_hash,
    verify_consistency,
    verify_inclusion,
)

# -- the Certificate Transparency test vectors (RFC 6962 trees over eight leaves) ------------

CT_LEAVES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
CT_LEAF_HASHES = [leaf_hash(data) for data in CT_LEAVES]
CT_ROOTS = {
    0: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    1: "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    2: "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    3: "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    4: "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    5: "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    6: "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    7: "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    8: "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
}
# (index, tree_size, proof) as published with the CT log verifier tests.
CT_INCLUSION_PROOFS = [
    (0, 1, []),
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
# (old_size, new_size, proof) as published with the CT log verifier tests.
CT_CONSISTENCY_PROOFS = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
SMALL_PAIRS = [(m, n) for n in range(9) for m in range(n + 1)]
SMALL_INDEXES = [(i, n) for n in range(1, 9) for i in range(n)]
OTHER_HASH = hashlib.sha256(b"not in the tree").digest()


# -- a deliberately naive reference: RFC 9162 §2.1.1, §2.1.3.1 and §2.1.4.1 as written -------


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(hashes: list[bytes]) -> bytes:
    if not hashes:
        return hashlib.sha256(b"").digest()
    if len(hashes) == 1:
        return hashes[0]
    k = _k(len(hashes))
    return hashlib.sha256(b"\x01" + ref_mth(hashes[:k]) + ref_mth(hashes[k:])).digest()


def ref_path(m: int, hashes: list[bytes]) -> list[bytes]:
    if len(hashes) == 1:
        return []
    k = _k(len(hashes))
    if m < k:
        return [*ref_path(m, hashes[:k]), ref_mth(hashes[k:])]
    return [*ref_path(m - k, hashes[k:]), ref_mth(hashes[:k])]


def ref_subproof(m: int, hashes: list[bytes], complete: bool) -> list[bytes]:
    if m == len(hashes):
        return [] if complete else [ref_mth(hashes)]
    k = _k(len(hashes))
    if m <= k:
        return [*ref_subproof(m, hashes[:k], complete), ref_mth(hashes[k:])]
    return [*ref_subproof(m - k, hashes[k:], False), ref_mth(hashes[:k])]


def hexes(hashes: list[bytes]) -> list[str]:
    return [h.hex() for h in hashes]


def flip(value: bytes, position: int = 0, mask: int = 0x01) -> bytes:
    changed = bytearray(value)
    changed[position] ^= mask
    return bytes(changed)


def leaves(count: int, salt: bytes = b"") -> list[bytes]:
    return [leaf_hash(salt + i.to_bytes(4, "big")) for i in range(count)]


@pytest.fixture(scope="module")
def ct_tree() -> MerkleTree:
    return MerkleTree(CT_LEAF_HASHES)


# -- hashing and known answers ---------------------------------------------------------------


def test_hash_functions_use_the_rfc_domain_separation() -> None:
    assert hashlib.sha256(b"").digest() == EMPTY_ROOT
    assert leaf_hash(b"abc") == hashlib.sha256(b"\x00abc").digest()
    left, right = b"L" * 32, b"R" * 32
    assert node_hash(left, right) == hashlib.sha256(b"\x01" + left + right).digest()
    assert node_hash(left, right) != node_hash(right, left)
    assert leaf_hash(left + right) != node_hash(left, right)


@pytest.mark.parametrize("size", range(9))
def test_known_roots(ct_tree: MerkleTree, size: int) -> None:
    expected = CT_ROOTS[size]
    assert merkle_root(CT_LEAF_HASHES[:size]).hex() == expected
    assert ct_tree.root(size).hex() == expected
    assert MerkleTree(CT_LEAF_HASHES[:size]).root().hex() == expected
    assert ref_mth(CT_LEAF_HASHES[:size]).hex() == expected


@pytest.mark.parametrize(("index", "size", "proof"), CT_INCLUSION_PROOFS)
def test_known_inclusion_proofs(
    ct_tree: MerkleTree, index: int, size: int, proof: list[str]
) -> None:
    assert hexes(ct_tree.inclusion_proof(index, size)) == proof
    as_bytes = [bytes.fromhex(h) for h in proof]
    root = bytes.fromhex(CT_ROOTS[size])
    assert verify_inclusion(CT_LEAF_HASHES[index], index, size, as_bytes, root)


@pytest.mark.parametrize(("old", "new", "proof"), CT_CONSISTENCY_PROOFS)
def test_known_consistency_proofs(
    ct_tree: MerkleTree, old: int, new: int, proof: list[str]
) -> None:
    assert hexes(ct_tree.consistency_proof(old, new)) == proof
    as_bytes = [bytes.fromhex(h) for h in proof]
    old_root, new_root = bytes.fromhex(CT_ROOTS[old]), bytes.fromhex(CT_ROOTS[new])
    assert verify_consistency(old, new, old_root, new_root, as_bytes)


def test_inclusion_proof_of_first_leaf_in_eight_has_three_elements(ct_tree: MerkleTree) -> None:
    assert len(ct_tree.inclusion_proof(0, 8)) == 3


@pytest.mark.parametrize(("index", "size"), SMALL_INDEXES)
def test_every_small_inclusion_proof_matches_the_rfc_and_verifies(
    ct_tree: MerkleTree, index: int, size: int
) -> None:
    proof = ct_tree.inclusion_proof(index, size)
    assert proof == ref_path(index, CT_LEAF_HASHES[:size])
    root = bytes.fromhex(CT_ROOTS[size])
    assert verify_inclusion(CT_LEAF_HASHES[index], index, size, proof, root)


@pytest.mark.parametrize(("old", "new"), SMALL_PAIRS)
def test_every_small_consistency_proof_matches_the_rfc_and_verifies(
    ct_tree: MerkleTree, old: int, new: int
) -> None:
    proof = ct_tree.consistency_proof(old, new)
    expected = ref_subproof(old, CT_LEAF_HASHES[:new], True) if 0 < old < new else []
    assert proof == expected
    old_root, new_root = bytes.fromhex(CT_ROOTS[old]), bytes.fromhex(CT_ROOTS[new])
    assert verify_consistency(old, new, old_root, new_root, proof)


# -- negative cases: every corruption of every small proof fails -----------------------------


def corrupt_inclusion(
    leaf: bytes, index: int, size: int, proof: list[bytes], root: bytes
) -> Iterator[tuple[str, tuple[bytes, int, int, list[bytes], bytes]]]:
    yield "index - 1", (leaf, index - 1, size, proof, root)
    yield "index + 1", (leaf, index + 1, size, proof, root)
    yield "index ^ 2", (leaf, index ^ 2, size, proof, root)
    yield "size * 2", (leaf, index, size * 2, proof, root)
    yield "size // 2", (leaf, index, size // 2, proof, root)
    yield "wrong leaf", (OTHER_HASH, index, size, proof, root)
    if size > 1:  # In a one-leaf tree the leaf hash *is* the root.
        yield "leaf given as root", (leaf, index, size, proof, leaf)
    yield "empty-tree root", (leaf, index, size, proof, EMPTY_ROOT)
    yield "extended", (leaf, index, size, [*proof, root], root)
    yield "extended with a hash", (leaf, index, size, [*proof, OTHER_HASH], root)
    yield "prefixed", (leaf, index, size, [root, *proof], root)
    yield "short element", (leaf, index, size, [*proof, b""], root)
    for i in range(len(proof)):
        changed = [*proof]
        changed[i] = flip(changed[i], position=i % HASH_SIZE)
        yield f"element {i} flipped", (leaf, index, size, changed, root)
    if proof:
        yield "truncated", (leaf, index, size, proof[:-1], root)
        yield "first removed", (leaf, index, size, proof[1:], root)
    if len(proof) > 1:
        yield "inserted", (leaf, index, size, [proof[0], OTHER_HASH, *proof[1:]], root)
        yield "reversed", (leaf, index, size, proof[::-1], root)


@pytest.mark.parametrize(("index", "size"), SMALL_INDEXES)
def test_corrupted_inclusion_proofs_fail(ct_tree: MerkleTree, index: int, size: int) -> None:
    leaf, root = CT_LEAF_HASHES[index], ct_tree.root(size)
    proof = ct_tree.inclusion_proof(index, size)
    assert verify_inclusion(leaf, index, size, proof, root)
    accepted = [
        label
        for label, args in corrupt_inclusion(leaf, index, size, proof, root)
        if verify_inclusion(*args)
    ]
    assert accepted == []
    for other in range(index + 1, 9):
        if other != size:
            assert not verify_inclusion(leaf, index, other, proof, ct_tree.root(other))


def corrupt_consistency(
    old: int, new: int, old_root: bytes, new_root: bytes, proof: list[bytes]
) -> Iterator[tuple[str, tuple[int, int, bytes, bytes, list[bytes]]]]:
    yield "old - 1", (old - 1, new, old_root, new_root, proof)
    yield "old + 1", (old + 1, new, old_root, new_root, proof)
    yield "old ^ 2", (old ^ 2, new, old_root, new_root, proof)
    yield "new * 2", (old, new * 2, old_root, new_root, proof)
    yield "new // 2", (old, new // 2, old_root, new_root, proof)
    yield "sizes swapped", (new, old, old_root, new_root, proof)
    yield "sizes and roots swapped", (new, old, new_root, old_root, proof)
    yield "roots swapped", (old, new, new_root, old_root, proof)
    yield "wrong old root", (old, new, OTHER_HASH, new_root, proof)
    yield "wrong new root", (old, new, old_root, OTHER_HASH, proof)
    yield "empty proof", (old, new, old_root, new_root, [])
    yield "extended", (old, new, old_root, new_root, [*proof, new_root])
    yield "extended with old root", (old, new, old_root, new_root, [*proof, old_root])
    yield "prefixed", (old, new, old_root, new_root, [old_root, *proof])
    yield "prefixed with first", (old, new, old_root, new_root, [proof[0], *proof])
    yield "short element", (old, new, old_root, new_root, [*proof, b""])
    yield "truncated", (old, new, old_root, new_root, proof[:-1])
    yield "first removed", (old, new, old_root, new_root, proof[1:])
    for i in range(len(proof)):
        changed = [*proof]
        changed[i] = flip(changed[i], position=(7 * i) % HASH_SIZE, mask=0x10)
        yield f"element {i} flipped", (old, new, old_root, new_root, changed)


@pytest.mark.parametrize(("old", "new"), [(m, n) for m, n in SMALL_PAIRS if 0 < m < n])
def test_corrupted_consistency_proofs_fail(ct_tree: MerkleTree, old: int, new: int) -> None:
    old_root, new_root = ct_tree.root(old), ct_tree.root(new)
    proof = ct_tree.consistency_proof(old, new)
    assert verify_consistency(old, new, old_root, new_root, proof)
    accepted = [
        label
        for label, args in corrupt_consistency(old, new, old_root, new_root, proof)
        if verify_consistency(*args)
    ]
    assert accepted == []
    for other in range(1, 9):
        if other not in (old, new):
            assert not verify_consistency(other, new, ct_tree.root(other), new_root, proof)
            assert not verify_consistency(old, other, old_root, ct_tree.root(other), proof)


def test_leaf_moved_to_another_index_fails(ct_tree: MerkleTree) -> None:
    root = ct_tree.root(8)
    for moved in range(8):
        for index in range(8):
            if index == moved:
                continue
            leaf = CT_LEAF_HASHES[moved]
            assert not verify_inclusion(leaf, index, 8, ct_tree.inclusion_proof(index, 8), root)
            assert not verify_inclusion(leaf, index, 8, ct_tree.inclusion_proof(moved, 8), root)


def test_the_size_is_bound_only_together_with_the_root(ct_tree: MerkleTree) -> None:
    """RFC 9162 uses tree_size only to shape the path, so a neighbouring size can pass.

    The index-0 paths of the 5- and 6-leaf trees have the same shape, so a proof made for
    size 5 still "verifies" when labelled size 6 *with the size-5 root*. This is why a size
    is trusted only as part of a signed (size, root) pair; with the real size-6 root it fails.
    """
    proof = ct_tree.inclusion_proof(0, 5)
    assert verify_inclusion(CT_LEAF_HASHES[0], 0, 6, proof, ct_tree.root(5))
    assert not verify_inclusion(CT_LEAF_HASHES[0], 0, 6, proof, ct_tree.root(6))
    consistency = ct_tree.consistency_proof(2, 5)
    assert verify_consistency(2, 6, ct_tree.root(2), ct_tree.root(5), consistency)
    assert not verify_consistency(2, 6, ct_tree.root(2), ct_tree.root(6), consistency)


# -- edge cases the RFC leaves open (decisions documented in the module) ---------------------


def test_nothing_is_included_in_the_empty_tree() -> None:
    assert not verify_inclusion(OTHER_HASH, 0, 0, [], EMPTY_ROOT)
    assert not verify_inclusion(EMPTY_ROOT, 0, 0, [], EMPTY_ROOT)


def test_single_leaf_tree_has_an_empty_proof_and_the_leaf_as_root() -> None:
    assert verify_inclusion(OTHER_HASH, 0, 1, [], OTHER_HASH)
    assert not verify_inclusion(OTHER_HASH, 0, 1, [], EMPTY_ROOT)
    assert not verify_inclusion(OTHER_HASH, 0, 1, [OTHER_HASH], OTHER_HASH)


@pytest.mark.parametrize(("index", "size"), [(-1, 8), (8, 8), (9, 8), (0, -1), (2**64, 8)])
def test_inclusion_out_of_range_is_false(ct_tree: MerkleTree, index: int, size: int) -> None:
    proof = ct_tree.inclusion_proof(0, 8)
    assert not verify_inclusion(CT_LEAF_HASHES[0], index, size, proof, ct_tree.root(8))


def test_inclusion_rejects_hashes_of_the_wrong_length(ct_tree: MerkleTree) -> None:
    proof, root = ct_tree.inclusion_proof(2, 3), ct_tree.root(3)
    assert verify_inclusion(CT_LEAF_HASHES[2], 2, 3, proof, root)
    assert not verify_inclusion(CT_LEAF_HASHES[2] + b"\x00", 2, 3, proof, root)
    assert not verify_inclusion(CT_LEAF_HASHES[2], 2, 3, proof, root[:-1])
    assert not verify_inclusion(CT_LEAF_HASHES[2], 2, 3, [proof[0] + b"\x00"], root)


def test_consistency_with_equal_sizes_needs_equal_roots_and_no_proof() -> None:
    root = CT_LEAF_HASHES[0]
    assert verify_consistency(5, 5, root, root, [])
    assert not verify_consistency(5, 5, root, OTHER_HASH, [])
    assert not verify_consistency(5, 5, root, root, [root])


def test_consistency_from_the_empty_tree_needs_the_empty_root_and_no_proof() -> None:
    new_root = bytes.fromhex(CT_ROOTS[8])
    assert verify_consistency(0, 8, EMPTY_ROOT, new_root, [])
    assert not verify_consistency(0, 8, OTHER_HASH, new_root, [])
    assert not verify_consistency(0, 8, EMPTY_ROOT, new_root, [EMPTY_ROOT])
    assert verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    assert not verify_consistency(0, 0, OTHER_HASH, OTHER_HASH, [])
    assert not verify_consistency(0, 0, EMPTY_ROOT, OTHER_HASH, [])


@pytest.mark.parametrize(("old", "new"), [(1, 0), (8, 7), (-1, 3), (0, -1), (-2, -1)])
def test_consistency_backwards_or_negative_is_false(old: int, new: int) -> None:
    assert not verify_consistency(old, new, EMPTY_ROOT, EMPTY_ROOT, [])
    assert not verify_consistency(old, new, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT])


def test_bad_argument_types_raise_type_error(ct_tree: MerkleTree) -> None:
    proof, root = ct_tree.inclusion_proof(0, 8), ct_tree.root(8)
    leaf = CT_LEAF_HASHES[0]
    with pytest.raises(TypeError, match="proof"):
        verify_inclusion(leaf, 0, 8, b"".join(proof), root)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="proof element"):
        verify_inclusion(leaf, 0, 8, [h.hex() for h in proof], root)  # type: ignore[misc]
    with pytest.raises(TypeError, match="index"):
        verify_inclusion(leaf, True, 8, proof, root)
    with pytest.raises(TypeError, match="root"):
        verify_inclusion(leaf, 0, 8, proof, root.hex())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="old_size"):
        verify_consistency(1.0, 8, root, root, [])  # type: ignore[arg-type]


# -- the tree itself -------------------------------------------------------------------------


def test_tree_rejects_malformed_leaf_hashes() -> None:
    tree = MerkleTree()
    with pytest.raises(ValueError, match="32 bytes"):
        tree.append(b"short")
    with pytest.raises(TypeError, match="bytes"):
        tree.append("0" * 32)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="32 bytes"):
        merkle_root([b"short"])
    assert len(tree) == 0
    assert tree.root() == EMPTY_ROOT


def test_tree_generators_reject_out_of_range_arguments(ct_tree: MerkleTree) -> None:
    with pytest.raises(ValueError, match="tree_size"):
        ct_tree.root(9)
    with pytest.raises(ValueError, match="tree_size"):
        ct_tree.inclusion_proof(0, 9)
    with pytest.raises(ValueError, match="leaf index"):
        ct_tree.inclusion_proof(3, 3)
    with pytest.raises(ValueError, match="leaf index"):
        ct_tree.inclusion_proof(-1, 3)
    with pytest.raises(ValueError, match="old_size"):
        ct_tree.consistency_proof(4, 3)
    with pytest.raises(ValueError, match="tree_size"):
        ct_tree.consistency_proof(1, 9)
    with pytest.raises(ValueError, match="leaf index"):
        ct_tree.leaf(8)


def test_append_returns_indexes_and_leaves_read_back(ct_tree: MerkleTree) -> None:
    tree = MerkleTree()
    assert [tree.append(h) for h in CT_LEAF_HASHES] == list(range(8))
    assert tree.size == len(tree) == 8
    assert [tree.leaf(i) for i in range(8)] == CT_LEAF_HASHES
    assert ct_tree.root() == tree.root() == bytes.fromhex(CT_ROOTS[8])


def test_growing_a_tree_keeps_old_roots_and_proofs_valid() -> None:
    tree = MerkleTree(leaves(100))
    old_root, old_proof = tree.root(), tree.inclusion_proof(42, 100)
    tree.extend(leaves(37, salt=b"later"))
    assert tree.root(100) == old_root
    assert tree.inclusion_proof(42, 100) == old_proof
    assert verify_consistency(100, 137, old_root, tree.root(), tree.consistency_proof(100, 137))


# -- the log-tampering scenarios the module exists to catch ----------------------------------


def _consistent_with(old: MerkleTree, new: MerkleTree) -> bool:
    if new.size < old.size:
        return verify_consistency(old.size, new.size, old.root(), new.root(), [])
    proof = new.consistency_proof(old.size, new.size)
    return verify_consistency(old.size, new.size, old.root(), new.root(), proof)


def test_an_honestly_extended_log_is_consistent() -> None:
    events = leaves(20)
    assert _consistent_with(MerkleTree(events[:13]), MerkleTree(events))


@pytest.mark.parametrize("tamper", ["edit", "reorder", "truncate", "delete", "insert"])
def test_a_tampered_log_is_caught_by_consistency(tamper: str) -> None:
    events = leaves(20)
    signed_then = MerkleTree(events[:13])
    later = [*events]
    if tamper == "edit":
        later[5] = leaf_hash(b"rewritten")
    elif tamper == "reorder":
        later[3], later[4] = later[4], later[3]
    elif tamper == "truncate":
        later = later[:12]
    elif tamper == "delete":
        del later[7]
    else:
        later.insert(2, leaf_hash(b"backdated"))
    assert not _consistent_with(signed_then, MerkleTree(later))


# -- properties ------------------------------------------------------------------------------

tree_sizes = st.integers(min_value=1, max_value=300)
salts = st.binary(max_size=8)


@settings(max_examples=40, deadline=None)
@given(size=tree_sizes, salt=salts)
def test_every_inclusion_and_consistency_proof_verifies(size: int, salt: bytes) -> None:
    hashes = leaves(size, salt)
    tree = MerkleTree(hashes)
    root = tree.root()
    for index in range(size):
        assert verify_inclusion(
            hashes[index], index, size, tree.inclusion_proof(index, size), root
        )
    for old in range(size + 1):
        proof = tree.consistency_proof(old, size)
        assert verify_consistency(old, size, tree.root(old), root, proof)


@settings(max_examples=60, deadline=None)
@given(data=st.data(), size=st.integers(min_value=1, max_value=300), salt=salts)
def test_random_proof_pairs_verify_and_match_the_reference(
    data: st.DataObject, size: int, salt: bytes
) -> None:
    hashes = leaves(size, salt)
    tree = MerkleTree(hashes)
    new = data.draw(st.integers(min_value=1, max_value=size), label="new")
    old = data.draw(st.integers(min_value=0, max_value=new), label="old")
    index = data.draw(st.integers(min_value=0, max_value=new - 1), label="index")
    inclusion = tree.inclusion_proof(index, new)
    consistency = tree.consistency_proof(old, new)
    assert inclusion == ref_path(index, hashes[:new])
    assert consistency == (ref_subproof(old, hashes[:new], True) if 0 < old < new else [])
    assert verify_inclusion(hashes[index], index, new, inclusion, ref_mth(hashes[:new]))
    assert verify_consistency(old, new, tree.root(old), ref_mth(hashes[:new]), consistency)


@settings(max_examples=150, deadline=None)
@given(data=st.data(), size=st.integers(min_value=2, max_value=300), salt=salts)
def test_flipping_any_byte_of_any_inclusion_proof_element_fails(
    data: st.DataObject, size: int, salt: bytes
) -> None:
    hashes = leaves(size, salt)
    tree = MerkleTree(hashes)
    index = data.draw(st.integers(min_value=0, max_value=size - 1), label="index")
    proof = tree.inclusion_proof(index, size)
    element = data.draw(st.integers(min_value=0, max_value=len(proof) - 1), label="element")
    position = data.draw(st.integers(min_value=0, max_value=HASH_SIZE - 1), label="byte")
    mask = data.draw(st.integers(min_value=1, max_value=255), label="mask")
    proof[element] = flip(proof[element], position, mask)
    assert not verify_inclusion(hashes[index], index, size, proof, tree.root())


@settings(max_examples=150, deadline=None)
@given(data=st.data(), size=st.integers(min_value=3, max_value=300), salt=salts)
def test_flipping_any_byte_of_any_consistency_proof_element_fails(
    data: st.DataObject, size: int, salt: bytes
) -> None:
    tree = MerkleTree(leaves(size, salt))
    new = data.draw(st.integers(min_value=2, max_value=size), label="new")
    old = data.draw(st.integers(min_value=1, max_value=new - 1), label="old")
    proof = tree.consistency_proof(old, new)
    element = data.draw(st.integers(min_value=0, max_value=len(proof) - 1), label="element")
    position = data.draw(st.integers(min_value=0, max_value=HASH_SIZE - 1), label="byte")
    mask = data.draw(st.integers(min_value=1, max_value=255), label="mask")
    proof[element] = flip(proof[element], position, mask)
    assert not verify_consistency(old, new, tree.root(old), tree.root(new), proof)


@settings(max_examples=30, deadline=None)
@given(raw=st.lists(st.binary(max_size=16), max_size=200))
def test_incremental_root_equals_batch_root_for_every_prefix(raw: list[bytes]) -> None:
    hashes = [leaf_hash(item) for item in raw]
    tree = MerkleTree()
    assert tree.root() == merkle_root([]) == EMPTY_ROOT
    for count, item in enumerate(hashes, start=1):
        tree.append(item)
        expected = merkle_root(hashes[:count])
        assert tree.root() == expected
        assert tree.root(count) == expected
    for count in range(len(hashes) + 1):
        assert tree.root(count) == merkle_root(hashes[:count]) == ref_mth(hashes[:count])
