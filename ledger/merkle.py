"""RFC 6962 / RFC 9162 Merkle trees over entry ids: roots, proofs, and their verification.

Hashing (RFC 6962 §2.1): leaf = SHA-256(0x00 || data), node = SHA-256(0x01 || left || right);
the tree over n leaves splits at the largest power of two below n; the empty tree hashes to
SHA-256(""). In the ledger a leaf's data is the 32-byte entry id.

:class:`Frontier` keeps the roots of the perfect subtrees of the tree built so far (at most
log2(n) hashes), so that the writer and the verifier get the root at every checkpoint size in
O(1) amortised hashes per entry instead of rebuilding the tree.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

__all__ = [
    "EMPTY_ROOT",
    "Frontier",
    "ProofError",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "leaf_hashes",
    "node_hash",
    "root",
    "root_from_inclusion_proof",
    "verify_consistency",
    "verify_inclusion",
]

_sha256 = hashlib.sha256

#: Root of the tree with no leaves.
EMPTY_ROOT = _sha256(b"").digest()


class ProofError(ValueError):
    """A proof is malformed or does not prove what it claims."""


def leaf_hash(data: bytes) -> bytes:
    """RFC 6962 leaf hash of ``data``."""
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962 interior node hash."""
    return _sha256(b"\x01" + left + right).digest()


# Hashers already fed their one-byte prefix: copying one costs less than starting a SHA-256
# (OpenSSL 3 looks the algorithm up on every new hasher), which counts at two hashes per entry.
_LEAF_SEED = _sha256(b"\x00")
_NODE_SEED = _sha256(b"\x01")


def leaf_hashes(data: Sequence[bytes]) -> list[bytes]:
    """RFC 6962 leaf hashes of many items: ``[leaf_hash(d) for d in data]``, faster."""
    copy = _LEAF_SEED.copy
    out = []
    for item in data:
        hasher = copy()
        hasher.update(item)
        out.append(hasher.digest())
    return out


def _split(n: int) -> int:
    """The largest power of two strictly below ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """Merkle tree hash over already-hashed leaves (RFC 6962 MTH)."""
    n = len(leaf_hashes)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaf_hashes[0]
    k = _split(n)
    return node_hash(root(leaf_hashes[:k]), root(leaf_hashes[k:]))


class Frontier:
    """Incremental Merkle root: append leaf hashes one by one, ask for the root at any time.

    ``_stack`` holds the roots of the perfect subtrees that make up the current tree, the
    largest (leftmost) first; their sizes are the set bits of ``size``.
    """

    __slots__ = ("_stack", "size")

    def __init__(self) -> None:
        self._stack: list[bytes] = []
        self.size = 0

    def append(self, leaf: bytes) -> None:
        """Add one leaf *hash* (see :func:`leaf_hash`)."""
        stack = self._stack
        node = leaf
        size = self.size
        # Each trailing 1-bit of the old size is a perfect subtree the new leaf completes.
        while size & 1:
            node = node_hash(stack.pop(), node)
            size >>= 1
        stack.append(node)
        self.size += 1

    def extend(self, leaves: Sequence[bytes]) -> None:
        """Add many leaf *hashes*: the same tree as :meth:`append` for each, built level by level.

        Level by level, each level's new nodes are paired in one tight loop (with hashers copied
        from one already fed the node prefix) instead of a walk up the tree per leaf: the
        hashes are the same, the interpreter work about half. At a level where the old tree had
        a perfect subtree (a set bit of the old size), the first new node is its right sibling;
        a node left without a sibling at the end of a level is the root of a new perfect
        subtree.
        """
        stack = self._stack
        position = self.size  # where the new nodes start, in units of the level's subtree size
        self.size += len(leaves)
        level = list(leaves)
        new_subtrees: list[bytes] = []  # smallest first
        seeded = _NODE_SEED.copy
        while level:
            if position & 1:
                level[0] = node_hash(stack.pop(), level[0])
                nodes = [level[0]]
                rest = level[1:]
            else:
                nodes = []
                rest = level
            if len(rest) & 1:
                new_subtrees.append(rest.pop())
            for a, b in zip(rest[::2], rest[1::2], strict=True):
                hasher = seeded()
                hasher.update(a)
                hasher.update(b)
                nodes.append(hasher.digest())
            level = nodes
            position >>= 1
        stack.extend(reversed(new_subtrees))

    @classmethod
    def restore(cls, stack: bytes, size: int) -> Frontier:
        """The frontier of a tree of ``size`` leaves from its :meth:`packed` subtree roots.

        Raises:
            ProofError: ``stack`` is not bytes holding one 32-byte root per set bit of ``size``.
        """
        if (
            not isinstance(stack, bytes)
            or not isinstance(size, int)
            or size < 0
            or len(stack) != 32 * bin(size).count("1")
        ):
            raise ProofError(f"not the packed frontier of a tree of {size!r} leaves")
        frontier = cls()
        frontier._stack = [stack[i : i + 32] for i in range(0, len(stack), 32)]
        frontier.size = size
        return frontier

    def packed(self) -> bytes:
        """The subtree roots, largest first, as one byte string (see :meth:`restore`)."""
        return b"".join(self._stack)

    def root(self) -> bytes:
        """Root of the tree over every leaf appended so far."""
        stack = self._stack
        if not stack:
            return EMPTY_ROOT
        node = stack[-1]
        for left in reversed(stack[:-1]):
            node = node_hash(left, node)
        return node


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int) -> list[bytes]:
    """Audit path for leaf ``index`` in the tree over ``leaf_hashes`` (RFC 6962 §2.1.1)."""
    n = len(leaf_hashes)
    if not 0 <= index < n:
        raise ProofError(f"leaf {index} is outside a tree of size {n}")
    if n == 1:
        return []
    k = _split(n)
    if index < k:
        return [*inclusion_proof(leaf_hashes[:k], index), root(leaf_hashes[k:])]
    return [*inclusion_proof(leaf_hashes[k:], index - k), root(leaf_hashes[:k])]


def consistency_proof(leaf_hashes: Sequence[bytes], size1: int) -> list[bytes]:
    """Proof that the tree of size ``size1`` is a prefix of the one over ``leaf_hashes``."""
    n = len(leaf_hashes)
    if not 0 < size1 <= n:
        raise ProofError(f"no consistency proof from size {size1} to {n}")
    return _subproof(leaf_hashes, size1, complete=True)


def _subproof(leaves: Sequence[bytes], m: int, *, complete: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if complete else [root(leaves)]
    k = _split(n)
    if m <= k:
        return [*_subproof(leaves[:k], m, complete=complete), root(leaves[k:])]
    return [*_subproof(leaves[k:], m - k, complete=False), root(leaves[:k])]


def _decompose(index: int, size: int) -> tuple[int, int]:
    """Split an inclusion path into its inner part and its right-border part (RFC 9162 §2.1.3.2)."""
    inner = (index ^ (size - 1)).bit_length()
    border = bin(index >> inner).count("1")
    return inner, border


def root_from_inclusion_proof(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root that ``proof`` implies for leaf hash ``leaf`` at ``index`` in a tree of ``size``.

    Raises:
        ProofError: the index is outside the tree, or the proof has the wrong length.
    """
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} is outside a tree of size {size}")
    if len(leaf) != 32:
        raise ProofError(f"leaf hash has {len(leaf)} bytes, not 32")
    inner, border = _decompose(index, size)
    if len(proof) != inner + border:
        raise ProofError(f"proof has {len(proof)} hashes, want {inner + border}")
    node = leaf
    for level, sibling in enumerate(proof[:inner]):
        node = node_hash(node, sibling) if (index >> level) & 1 == 0 else node_hash(sibling, node)
    for sibling in proof[inner:]:
        node = node_hash(sibling, node)
    return node


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root_hash: bytes
) -> None:
    """Check that ``leaf`` is at ``index`` in the tree of ``size`` with ``root_hash``.

    Raises:
        ProofError: it is not (or the proof is malformed).
    """
    if root_from_inclusion_proof(index, size, leaf, proof) != root_hash:
        raise ProofError("inclusion proof does not lead to the root")


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Check that the tree (size1, root1) is a prefix of the tree (size2, root2) (RFC 9162 §2.1.4.2).

    Raises:
        ProofError: it is not (or the proof is malformed).
    """
    if not 0 < size1 <= size2:
        # RFC 9162 defines no proof from the empty tree: there is nothing to be consistent with.
        raise ProofError(f"size1 {size1} is not within 1..size2 {size2}")
    if size1 == size2:
        if proof:
            raise ProofError("equal sizes need an empty proof")
        if root1 != root2:
            raise ProofError("equal sizes but different roots")
        return
    if not proof:
        raise ProofError("empty consistency proof")
    inner, border = _decompose(size1 - 1, size2)
    shift = (size1 & -size1).bit_length() - 1  # trailing zero bits of size1
    inner -= shift
    # size1 a power of two: its root is a node of the bigger tree and starts the chain;
    # otherwise the proof's first hash is that node.
    if size1 == 1 << shift:
        seed, rest = root1, list(proof)
    else:
        seed, rest = proof[0], list(proof[1:])
    if len(rest) != inner + border:
        raise ProofError(
            f"proof has {len(proof)} hashes, want {inner + border + (len(proof) - len(rest))}"
        )
    mask = (size1 - 1) >> shift
    hash1 = seed
    hash2 = seed
    for level, sibling in enumerate(rest[:inner]):
        if (mask >> level) & 1:
            hash1 = node_hash(sibling, hash1)
            hash2 = node_hash(sibling, hash2)
        else:
            hash2 = node_hash(hash2, sibling)
    for sibling in rest[inner:]:
        hash1 = node_hash(sibling, hash1)
        hash2 = node_hash(sibling, hash2)
    if hash1 != root1:
        raise ProofError("consistency proof does not lead to the first root")
    if hash2 != root2:
        raise ProofError("consistency proof does not lead to the second root")
