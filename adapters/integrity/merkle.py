"""RFC 6962 / RFC 9162 Merkle tree hashing, proofs and proof verification.

The event log is append-only. Hashing every event into a Merkle tree, and signing the
tree's root from time to time, lets anyone holding an earlier signed root prove later that
the log was not edited, reordered, truncated or deleted:

* an *inclusion proof* shows that a given event hash sits at a given index of a tree;
* a *consistency proof* shows that the tree of ``old_size`` leaves is a prefix of the tree
  of ``new_size`` leaves, so nothing before ``old_size`` changed.

Hashing follows RFC 9162 §2.1.1 (identical to RFC 6962 §2.1), with SHA-256:

* empty tree: ``SHA-256()``;
* leaf: ``SHA-256(0x00 || leaf_bytes)``;
* interior node: ``SHA-256(0x01 || left || right)``, where the left subtree holds the
  largest power of two leaves strictly smaller than the number of leaves.

Proof generation is the PATH (§2.1.3.1) and SUBPROOF (§2.1.4.1) algorithms, proof
verification is §2.1.3.2 and §2.1.4.2 followed step by step. The verifiers never raise on
bad input: anything that does not prove what is claimed returns ``False``. Only argument
*types* are checked eagerly (``TypeError``).

Edge cases the RFC leaves to the implementation, decided here:

* Every hash (leaf hash, proof element, root) must be exactly 32 bytes, else ``False``.
* Inclusion: ``index >= tree_size`` or a negative argument is ``False`` (so nothing is
  included in the empty tree). A one-leaf tree has the empty proof; its root is the leaf.
* Consistency: ``old_size > new_size`` or a negative size is ``False``.
  ``old_size == new_size`` needs an empty proof and equal roots.
  ``old_size == 0`` needs an empty proof and ``old_root`` equal to the empty-tree root
  (every tree extends the empty tree, but a claimed empty root must be the real one);
  if ``new_size`` is also 0, ``new_root`` must be the empty-tree root too.
  Otherwise (``0 < old_size < new_size``) the RFC algorithm decides; it fails an empty proof.
* As in the RFC, ``tree_size`` only shapes the path walk, so a proof can also pass for a
  neighbouring size *paired with the same root*. A size is therefore trusted only as part
  of a signed (size, root) pair, never on its own.
* Generation mirrors this: ``consistency_proof(0, n)`` and ``consistency_proof(n, n)`` are
  ``[]``; out-of-range arguments to the generators raise ``ValueError``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "MerkleTree",
    "leaf_hash",
    "merkle_root",
    "node_hash",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
"""Bytes in a SHA-256 digest: every leaf hash, node hash, root and proof element."""

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""MTH({}): the root hash of the tree with no leaves."""


def leaf_hash(data: bytes) -> bytes:
    """Return the RFC 9162 hash of one leaf's data: ``SHA-256(0x00 || data)``."""
    _require_bytes(data, "data")
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return the RFC 9162 hash of an interior node: ``SHA-256(0x01 || left || right)``."""
    return _node_hash(left, right)


def _node_hash(left: bytes | bytearray, right: bytes) -> bytes:
    digest = hashlib.sha256(_NODE_PREFIX)
    digest.update(left)
    digest.update(right)
    return digest.digest()


def merkle_root(leaf_hashes: Sequence[bytes]) -> bytes:
    """Return MTH of a whole list of leaf hashes (already hashed with ``leaf_hash``).

    Builds the tree level by level: adjacent nodes pair up, and a level's odd last node is
    carried up unchanged, which gives exactly the RFC's left-heavy tree in O(n) time.
    """
    level = [_checked_hash(item, "leaf hash") for item in leaf_hashes]
    if not level:
        return EMPTY_ROOT
    while len(level) > 1:
        level = _parent_level(level)
    return level[0]


def _parent_level(level: list[bytes]) -> list[bytes]:
    parents = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
    if len(level) % 2:
        parents.append(level[-1])
    return parents


class MerkleTree:
    """An append-only Merkle tree over leaf hashes, answering for any past size.

    Every complete perfect subtree is cached: level ``h`` holds, packed in one
    ``bytearray``, the hashes of the subtrees of ``2**h`` leaves that are already full.
    Appending costs amortised O(1) hashes, and about ``2 * 32 * n`` bytes are kept in all.
    The root of any size ``n <= size`` is then O(log n) hashes, and each proof
    O(log² n) at worst. Instances are not thread-safe.
    """

    __slots__ = ("_levels", "_size")

    def __init__(self, leaf_hashes: Iterable[bytes] = ()) -> None:
        self._levels: list[bytearray] = []
        self._size = 0
        self.extend(leaf_hashes)

    def __len__(self) -> int:
        return self._size

    @classmethod
    def from_leaf_hashes(cls, leaf_hashes: Sequence[bytes]) -> MerkleTree:
        """The tree of these leaf hashes, built a level at a time: the same tree as appending
        them one by one, several times faster for a long list (a whole log being verified)."""
        tree = cls()
        level = b"".join(_checked_hash(item, "leaf hash") for item in leaf_hashes)
        count = len(level) // HASH_SIZE
        while count:
            tree._levels.append(bytearray(level))
            pairs = count // 2
            if not pairs:
                break
            sha256 = hashlib.sha256
            step = 2 * HASH_SIZE
            level = b"".join(
                [
                    sha256(_NODE_PREFIX + level[i : i + step]).digest()
                    for i in range(0, pairs * step, step)
                ]
            )
            count = pairs
        tree._size = len(leaf_hashes)
        return tree

    @property
    def size(self) -> int:
        """Number of leaves appended so far."""
        return self._size

    def append(self, leaf_hash: bytes) -> int:
        """Append one 32-byte leaf hash and return its index."""
        node = _checked_hash(leaf_hash, "leaf hash")
        index = self._size
        position = index
        height = 0
        while True:
            if height == len(self._levels):
                self._levels.append(bytearray())
            level = self._levels[height]
            level += node
            if not position & 1:
                break
            node = _node_hash(level[-2 * HASH_SIZE : -HASH_SIZE], node)
            position >>= 1
            height += 1
        self._size = index + 1
        return index

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        """Append several leaf hashes in order."""
        for item in leaf_hashes:
            self.append(item)

    def leaf(self, index: int) -> bytes:
        """Return the leaf hash stored at ``index``."""
        self._check_index(index, self._size)
        return self._perfect(0, index)

    def root(self, tree_size: int | None = None) -> bytes:
        """Return MTH of the first ``tree_size`` leaves (default: all of them)."""
        size = self._size if tree_size is None else self._check_size(tree_size)
        if size == 0:
            return EMPTY_ROOT
        return self._subtree(0, size)

    def inclusion_proof(self, index: int, tree_size: int) -> list[bytes]:
        """Return PATH(index, D[tree_size]) of RFC 9162 §2.1.3.1, leaf end first."""
        size = self._check_size(tree_size)
        self._check_index(index, size)
        proof: list[bytes] = []
        self._path(index, 0, size, proof)
        return proof

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        """Return PROOF(old_size, D[new_size]) of RFC 9162 §2.1.4.1.

        Empty when ``old_size`` is 0 or equals ``new_size`` (see the module docstring).
        """
        new = self._check_size(new_size)
        old = _require_int(old_size, "old_size")
        if not 0 <= old <= new:
            raise ValueError("consistency proof needs 0 <= old_size <= new_size")
        proof: list[bytes] = []
        if 0 < old < new:
            self._subproof(old, 0, new, proof, complete=True)
        return proof

    # -- internals -------------------------------------------------------------------------

    def _check_size(self, tree_size: int) -> int:
        size = _require_int(tree_size, "tree_size")
        if not 0 <= size <= self._size:
            raise ValueError(f"tree_size {size} is outside 0..{self._size}")
        return size

    @staticmethod
    def _check_index(index: int, size: int) -> None:
        if not 0 <= _require_int(index, "index") < size:
            raise ValueError(f"leaf index {index} is outside 0..{size - 1}")

    def _perfect(self, height: int, position: int) -> bytes:
        """Hash of the full subtree of ``2**height`` leaves number ``position`` at that height."""
        start = position * HASH_SIZE
        return bytes(self._levels[height][start : start + HASH_SIZE])

    def _subtree(self, start: int, count: int) -> bytes:
        """MTH(D[start:start + count]) for a range the RFC recursion produces (count > 0).

        Such ranges start on a multiple of their largest power-of-two part, so each full
        left part is one cached perfect subtree.
        """
        if count & (count - 1) == 0:
            height = count.bit_length() - 1
            return self._perfect(height, start >> height)
        split = _split_point(count)
        return node_hash(self._subtree(start, split), self._subtree(start + split, count - split))

    def _path(self, index: int, start: int, count: int, proof: list[bytes]) -> None:
        """Append PATH(index, D[start:start + count]) to ``proof``."""
        if count == 1:
            return
        split = _split_point(count)
        if index < split:
            self._path(index, start, split, proof)
            proof.append(self._subtree(start + split, count - split))
        else:
            self._path(index - split, start + split, count - split, proof)
            proof.append(self._subtree(start, split))

    def _subproof(
        self, old: int, start: int, count: int, proof: list[bytes], *, complete: bool
    ) -> None:
        """Append SUBPROOF(old, D[start:start + count], complete) to ``proof``."""
        if old == count:
            if not complete:
                proof.append(self._subtree(start, count))
            return
        split = _split_point(count)
        if old <= split:
            self._subproof(old, start, split, proof, complete=complete)
            proof.append(self._subtree(start + split, count - split))
        else:
            self._subproof(old - split, start + split, count - split, proof, complete=False)
            proof.append(self._subtree(start, split))


def _split_point(count: int) -> int:
    """The largest power of two strictly smaller than ``count`` (``count >= 2``)."""
    return 1 << ((count - 1).bit_length() - 1)


# -- verification ---------------------------------------------------------------------------


def verify_inclusion(
    leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 §2.1.3.2: does ``proof`` show ``leaf_hash`` at ``index`` under ``root``?"""
    _require_bytes(leaf_hash, "leaf_hash")
    _require_bytes(root, "root")
    _require_int(index, "index")
    _require_int(tree_size, "tree_size")
    path = _proof_list(proof)
    if not 0 <= index < tree_size:
        return False
    if not _all_hashes(leaf_hash, root, *path):
        return False
    computed = _root_from_inclusion_path(leaf_hash, index, tree_size, path)
    return computed is not None and computed == root


def _root_from_inclusion_path(
    leaf: bytes, index: int, tree_size: int, path: list[bytes]
) -> bytes | None:
    """Steps 2-5 of §2.1.3.2: the implied root, or None when the path has the wrong shape."""
    fn, sn = index, tree_size - 1
    r = leaf
    for p in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return r if sn == 0 else None


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 §2.1.4.2: does ``proof`` show the ``old_size`` tree is a prefix of the new?"""
    _require_int(old_size, "old_size")
    _require_int(new_size, "new_size")
    _require_bytes(old_root, "old_root")
    _require_bytes(new_root, "new_root")
    path = _proof_list(proof)
    if not 0 <= old_size <= new_size or not _all_hashes(old_root, new_root, *path):
        return False
    if old_size == 0:
        return not path and old_root == EMPTY_ROOT and (new_size > 0 or new_root == EMPTY_ROOT)
    if old_size == new_size:
        return not path and old_root == new_root
    roots = _roots_from_consistency_path(old_size, new_size, old_root, path)
    return roots is not None and roots == (old_root, new_root)


def _roots_from_consistency_path(
    old_size: int, new_size: int, old_root: bytes, path: list[bytes]
) -> tuple[bytes, bytes] | None:
    """Steps 1-7 of §2.1.4.2 for ``0 < old_size < new_size``: the implied (old, new) roots.

    Returns None when the path has the wrong shape.
    """
    if not path:
        return None
    if old_size & (old_size - 1) == 0:
        path = [old_root, *path]
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return (fr, sr) if sn == 0 else None


# -- argument checks ------------------------------------------------------------------------


def _require_int(value: int, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    return value


def _require_bytes(value: bytes, name: str) -> bytes:
    if not isinstance(value, bytes):
        raise TypeError(f"{name} must be bytes, not {type(value).__name__}")
    return value


def _checked_hash(value: bytes, name: str) -> bytes:
    _require_bytes(value, name)
    if len(value) != HASH_SIZE:
        raise ValueError(f"{name} must be {HASH_SIZE} bytes, not {len(value)}")
    return value


def _proof_list(proof: Sequence[bytes]) -> list[bytes]:
    if isinstance(proof, bytes | bytearray | str):
        raise TypeError("proof must be a sequence of bytes objects, not a single string")
    path = list(proof)
    for element in path:
        _require_bytes(element, "proof element")
    return path


def _all_hashes(*values: bytes) -> bool:
    return all(len(value) == HASH_SIZE for value in values)
