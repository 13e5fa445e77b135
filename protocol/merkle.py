"""Merkle roots and inclusion proofs in the shape of RFC 6962 (Certificate Transparency).

Leaves and inner nodes are hashed with different one-byte prefixes, so an inner node can never
be passed off as a leaf (the second-preimage attack on naive Merkle trees).  The tree over n
leaves splits at the largest power of two below n, which makes a proof at most ceil(log2 n)
hashes and the root independent of how the tree was built.
"""

from __future__ import annotations

from collections.abc import Sequence

from gridchain.protocol.crypto import sha256

EMPTY_ROOT = sha256(b"")


def leaf_hash(data: bytes) -> bytes:
    return sha256(b"\x00" + data)


def node_hash(left: bytes, right: bytes) -> bytes:
    return sha256(b"\x01" + left + right)


def _split(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def root_of_hashes(leaf_hashes: Sequence[bytes]) -> bytes:
    """Root over already-hashed leaves (see :func:`leaf_hash`)."""
    n = len(leaf_hashes)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaf_hashes[0]
    k = _split(n)
    return node_hash(root_of_hashes(leaf_hashes[:k]), root_of_hashes(leaf_hashes[k:]))


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    return root_of_hashes([leaf_hash(x) for x in leaves])


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int) -> list[bytes]:
    """Sibling hashes from the leaf up to the root."""
    n = len(leaf_hashes)
    if not 0 <= index < n:
        raise IndexError(f"leaf {index} of {n}")
    if n == 1:
        return []
    k = _split(n)
    if index < k:
        return [*inclusion_proof(leaf_hashes[:k], index), root_of_hashes(leaf_hashes[k:])]
    return [*inclusion_proof(leaf_hashes[k:], index - k), root_of_hashes(leaf_hashes[:k])]


def root_from_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes | None:
    """The root a proof from :func:`inclusion_proof` leads to, or None if its shape is wrong."""
    if not 0 <= index < size:
        return None
    if size == 1:
        return leaf if not proof else None
    if not proof:
        return None
    k = _split(size)
    *rest, sibling = proof
    if index < k:
        inner = root_from_inclusion(leaf, index, k, rest)
        return None if inner is None else node_hash(inner, sibling)
    inner = root_from_inclusion(leaf, index - k, size - k, rest)
    return None if inner is None else node_hash(sibling, inner)


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """Check a proof from :func:`inclusion_proof` for a leaf hash at ``index`` of ``size``."""
    return root_from_inclusion(leaf, index, size, proof) == root
