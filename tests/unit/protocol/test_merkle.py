"""Merkle trees: RFC 6962 shape, so light clients and other implementations agree on roots.

Why: a block header commits to its transactions only through ``tx_root``.  If our tree differed
from RFC 6962 in any detail (leaf/node prefixes, where an unbalanced tree splits, the empty
root), proofs produced here would not verify elsewhere.  The reference roots below are the
published Certificate Transparency test data for RFC 6962, and an independent bottom-up
implementation cross-checks every size up to 40.
"""

from __future__ import annotations

import hashlib

import pytest

from gridchain.protocol.merkle import (
    EMPTY_ROOT,
    inclusion_proof,
    leaf_hash,
    merkle_root,
    node_hash,
    root_of_hashes,
    verify_inclusion,
)

# Certificate Transparency's RFC 6962 reference inputs and tree heads (sizes 0..8).
CT_LEAVES = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]
CT_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
# (index, size, audit path leaf-to-root) from the same test data.
CT_PROOFS = [
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

SIZES = range(1, 41)


def _leaves(n: int) -> list[bytes]:
    """Distinct leaf hashes (equal leaves would make some wrong-index proofs legitimately pass)."""
    return [leaf_hash(b"leaf %d" % i) for i in range(n)]


def _bottom_up_root(hashes: list[bytes]) -> bytes:
    """An independent construction: pair neighbours level by level, promoting an odd last node.

    For RFC 6962 this yields the same tree as splitting at the largest power of two below n,
    so agreement is evidence that the recursive code splits where the RFC says.
    """
    if not hashes:
        return hashlib.sha256(b"").digest()
    level = list(hashes)
    while len(level) > 1:
        nxt = [
            hashlib.sha256(b"\x01" + level[i] + level[i + 1]).digest()
            for i in range(0, len(level) - 1, 2)
        ]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


# --- structure -------------------------------------------------------------------------------


def test_empty_root_is_sha256_of_nothing() -> None:
    assert hashlib.sha256(b"").digest() == EMPTY_ROOT
    assert merkle_root([]) == EMPTY_ROOT
    assert root_of_hashes([]) == EMPTY_ROOT


def test_leaf_and_node_prefixes() -> None:
    """0x00 before a leaf, 0x01 before two children: the RFC 6962 domain separation."""
    assert leaf_hash(b"abc") == hashlib.sha256(b"\x00abc").digest()
    left, right = b"\xaa" * 32, b"\xbb" * 32
    assert node_hash(left, right) == hashlib.sha256(b"\x01" + left + right).digest()


@pytest.mark.parametrize("size", range(len(CT_ROOTS)))
def test_matches_rfc6962_reference_roots(size: int) -> None:
    assert merkle_root(CT_LEAVES[:size]).hex() == CT_ROOTS[size]


@pytest.mark.parametrize(("index", "size", "path"), CT_PROOFS)
def test_matches_rfc6962_reference_proofs(index: int, size: int, path: list[str]) -> None:
    hashes = [leaf_hash(x) for x in CT_LEAVES[:size]]
    proof = inclusion_proof(hashes, index)
    assert [p.hex() for p in proof] == path
    assert verify_inclusion(hashes[index], index, size, proof, bytes.fromhex(CT_ROOTS[size]))


@pytest.mark.parametrize("size", SIZES)
def test_root_matches_bottom_up_construction(size: int) -> None:
    hashes = _leaves(size)
    assert root_of_hashes(hashes) == _bottom_up_root(hashes)


def test_unbalanced_trees_split_at_the_largest_power_of_two_below_n() -> None:
    h = _leaves(7)
    n01, n23, n45 = node_hash(h[0], h[1]), node_hash(h[2], h[3]), node_hash(h[4], h[5])
    root4 = node_hash(n01, n23)
    assert root_of_hashes(h[:1]) == h[0]
    assert root_of_hashes(h[:3]) == node_hash(n01, h[2])
    assert root_of_hashes(h[:5]) == node_hash(root4, h[4])
    assert root_of_hashes(h[:6]) == node_hash(root4, n45)
    assert root_of_hashes(h[:7]) == node_hash(root4, node_hash(n45, h[6]))


def test_an_inner_node_cannot_pose_as_a_leaf() -> None:
    """The second-preimage attack on naive trees: concatenated children as one leaf."""
    a, b = b"left", b"right"
    assert merkle_root([leaf_hash(a) + leaf_hash(b)]) != merkle_root([a, b])
    assert leaf_hash(leaf_hash(a) + leaf_hash(b)) != merkle_root([a, b])


def test_order_matters() -> None:
    assert merkle_root([b"a", b"b"]) != merkle_root([b"b", b"a"])


# --- inclusion proofs ------------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
def test_every_proof_verifies_and_is_short(size: int) -> None:
    hashes = _leaves(size)
    root = root_of_hashes(hashes)
    for i in range(size):
        proof = inclusion_proof(hashes, i)
        assert len(proof) <= (size - 1).bit_length()  # ceil(log2 size)
        assert verify_inclusion(hashes[i], i, size, proof, root)


@pytest.mark.parametrize("size", SIZES)
def test_proof_fails_for_a_wrong_index(size: int) -> None:
    hashes = _leaves(size)
    root = root_of_hashes(hashes)
    for i in range(size):
        proof = inclusion_proof(hashes, i)
        for j in range(size):
            if j != i:
                assert not verify_inclusion(hashes[i], j, size, proof, root), (i, j)
        assert not verify_inclusion(hashes[i], size, size, proof, root)
        assert not verify_inclusion(hashes[i], -1, size, proof, root)


@pytest.mark.parametrize("size", SIZES)
def test_proof_fails_for_a_wrong_leaf_or_root(size: int) -> None:
    hashes = _leaves(size)
    root = root_of_hashes(hashes)
    other_root = root_of_hashes(_leaves(size + 1))
    for i in range(size):
        proof = inclusion_proof(hashes, i)
        assert not verify_inclusion(leaf_hash(b"not in the tree"), i, size, proof, root)
        assert not verify_inclusion(bytes([hashes[i][0] ^ 1]) + hashes[i][1:], i, size, proof, root)
        assert not verify_inclusion(hashes[i], i, size, proof, other_root)
        # the leaf's *data* instead of its hash is not a leaf hash
        assert not verify_inclusion(b"leaf %d" % i, i, size, proof, root)


@pytest.mark.parametrize("size", [2, 3, 5, 8, 13, 40])
def test_proof_fails_when_altered(size: int) -> None:
    """A proof with a changed, missing or extra hash never verifies."""
    hashes = _leaves(size)
    root = root_of_hashes(hashes)
    for i in range(size):
        proof = inclusion_proof(hashes, i)
        for k in range(len(proof)):
            changed = [*proof[:k], bytes([proof[k][0] ^ 1]) + proof[k][1:], *proof[k + 1 :]]
            assert not verify_inclusion(hashes[i], i, size, changed, root)
        assert not verify_inclusion(hashes[i], i, size, proof[:-1], root)
        assert not verify_inclusion(hashes[i], i, size, [*proof, root], root)
        if len(proof) >= 2:
            assert not verify_inclusion(hashes[i], i, size, proof[::-1], root)


def test_single_leaf_tree_has_an_empty_proof() -> None:
    (h,) = _leaves(1)
    assert inclusion_proof([h], 0) == []
    assert verify_inclusion(h, 0, 1, [], h)
    assert not verify_inclusion(h, 0, 1, [h], h)


@pytest.mark.parametrize(("index", "size"), [(-1, 3), (3, 3), (0, 0)])
def test_inclusion_proof_refuses_an_index_outside_the_tree(index: int, size: int) -> None:
    with pytest.raises(IndexError):
        inclusion_proof(_leaves(size), index)
