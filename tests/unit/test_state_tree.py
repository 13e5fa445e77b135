"""The sparse Merkle tree under the state root (market/state_tree.py, ADR 0027).

Why: the tree is updated in place block after block, so a bug in an update (a leaf not moved up
after a deletion, a stale node left below a new leaf) would give a root that no fresh validator
replaying the same contents computes.  The properties here hold the incremental tree to the one
built from nothing, node for node, after random writes and deletes; proofs must verify against
the root and fail once tampered; and a write must touch only the nodes on its path (the reason
for the tree, issue 17), counted, not timed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Mapping

from hypothesis import given, settings
from hypothesis import strategies as st

from gridchain.market import state_tree as tree
from gridchain.market.state import MerkleState, StateProof
from gridchain.market.state_tree import EMPTY, MemoryNodes

KEYS = st.binary(min_size=0, max_size=3)  # short keys: many collisions of writes on keys
VALUES = st.binary(min_size=0, max_size=6)
BATCHES = st.lists(st.dictionaries(KEYS, st.none() | VALUES, max_size=25), max_size=12)


def _applied(entries: dict[bytes, bytes], writes: Mapping[bytes, bytes | None]) -> None:
    for k, v in writes.items():
        if v is None:
            entries.pop(k, None)
        else:
            entries[k] = v


class _CountingNodes(MemoryNodes):
    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def get_node(self, position: bytes) -> bytes | None:
        self.reads += 1
        return super().get_node(position)


@settings(max_examples=150, deadline=None)
@given(initial=st.dictionaries(KEYS, VALUES, max_size=40), batches=BATCHES)
def test_after_random_writes_and_deletes_the_tree_is_the_one_built_from_nothing(
    initial: dict[bytes, bytes], batches: list[dict[bytes, bytes | None]]
) -> None:
    state = MerkleState(initial)
    entries = dict(initial)
    for writes in batches:
        predicted = state.root_with(writes)
        state.apply(writes)
        _applied(entries, writes)
        fresh = MerkleState(entries)
        assert state.root() == predicted == fresh.root()
        # Node for node: no stale node is left behind, none is missing.
        assert isinstance(state.nodes, MemoryNodes)
        assert isinstance(fresh.nodes, MemoryNodes)
        assert state.nodes.nodes == fresh.nodes.nodes
    assert dict(state.items()) == entries
    if not entries:
        assert state.root() == EMPTY


@settings(max_examples=60, deadline=None)
@given(
    entries=st.dictionaries(KEYS, VALUES, min_size=1, max_size=60),
    deleted=st.lists(KEYS, max_size=20),
    data=st.data(),
)
def test_proofs_verify_after_deletes_and_fail_when_tampered(
    entries: dict[bytes, bytes], deleted: list[bytes], data: st.DataObject
) -> None:
    state = MerkleState(entries)
    state.apply(dict.fromkeys(deleted))
    live = dict(state.items())
    root = state.root()
    for key in deleted:
        if key not in live:
            assert state.prove(key) is None
    for key, _value in live.items():
        proof = state.prove(key)
        assert proof is not None
        assert proof.verify(root)
    if not live:
        return
    key = data.draw(st.sampled_from(sorted(live)))
    proof = state.prove(key)
    assert proof is not None
    tampered: list[StateProof] = [dataclasses.replace(proof, value=live[key] + b"!")]
    if proof.siblings:
        i = data.draw(st.integers(0, len(proof.siblings) - 1))
        flipped = bytes([proof.siblings[i][0] ^ 1]) + proof.siblings[i][1:]
        tampered.append(
            dataclasses.replace(
                proof, siblings=(*proof.siblings[:i], flipped, *proof.siblings[i + 1 :])
            )
        )
    others = [k for k in live if k != key]
    if others:
        tampered.append(dataclasses.replace(proof, key=data.draw(st.sampled_from(others))))
    for forged in tampered:
        assert not forged.verify(root)


def test_the_root_does_not_depend_on_the_order_of_writes() -> None:
    entries = {b"k%d" % i: b"v%d" % i for i in range(300)}
    one_by_one = MerkleState()
    for key in sorted(entries, reverse=True):
        one_by_one.apply({key: entries[key]})
    assert one_by_one.root() == MerkleState(entries).root()
    assert one_by_one.root() == tree.root_of(tree.nodes_of(entries))


def test_a_write_reads_and_writes_only_the_nodes_on_its_path() -> None:
    """The work of one write grows with log2(n), not with n (issue 17)."""
    for n in (1_000, 16_000):
        nodes = _CountingNodes()
        entries = {b"key-%d" % i: b"v" for i in range(n)}
        nodes.write_nodes(tree.update(nodes, tree.items_of(entries)).nodes)
        state = MerkleState(entries, nodes=nodes)
        depth = max(len(p.siblings) for p in map(state.prove, [b"key-1", b"key-77"]) if p)
        nodes.reads = 0
        written = state.apply({b"key-5": b"changed"})
        # The path to one leaf: its depth is within a small margin of log2(n).
        assert nodes.reads <= depth + 3 <= math.log2(n) + 16
        assert len(written) <= depth + 3


def test_an_empty_tree_and_one_leaf() -> None:
    assert MerkleState().root() == EMPTY
    state = MerkleState({b"only": b"1"})
    proof = state.prove(b"only")
    assert proof is not None
    assert proof.siblings == ()
    assert state.root() == tree.leaf_of(tree.key_hash(b"only"), b"1")
    state.apply({b"only": None})
    assert state.root() == EMPTY
    assert isinstance(state.nodes, MemoryNodes)
    assert state.nodes.nodes == {}


def _reference_root(entries: Mapping[bytes, bytes]) -> bytes:
    """The root as ADR 0027 defines it, from the entries alone, by the plainest recursion (no
    positions, no node store, no bisection): an independent check of the update's hot path,
    which ADR 0055 rewrote for speed."""
    leaves = sorted(
        (tree.key_hash(k), tree.leaf_of(tree.key_hash(k), v)) for k, v in entries.items()
    )

    def root(depth: int, part: list[tuple[bytes, bytes]]) -> bytes:
        if not part:
            return EMPTY
        if len(part) == 1:
            return part[0][1]  # a subtree of one leaf is that leaf
        left = [leaf for leaf in part if not tree.bit(leaf[0], depth)]
        right = [leaf for leaf in part if tree.bit(leaf[0], depth)]
        return tree.inner_of(root(depth + 1, left), root(depth + 1, right))

    return root(0, leaves)


@settings(max_examples=150, deadline=None)
@given(initial=st.dictionaries(KEYS, VALUES, max_size=60), batches=BATCHES)
def test_the_incremental_root_is_the_reference_root_after_every_batch(
    initial: dict[bytes, bytes], batches: list[dict[bytes, bytes | None]]
) -> None:
    state = MerkleState(initial)
    entries = dict(initial)
    assert state.root() == _reference_root(entries)
    for writes in batches:
        state.apply(writes)
        _applied(entries, writes)
        assert state.root() == _reference_root(entries)


#: Roots computed by the tree before ADR 0055 rewrote its update (HEAD 2d297c3), for the entries
#: of :func:`_pinned_entries`, then after deleting every fifth and adding 100 keys.
PINNED_ROOT = "57815bbbcd6eb48aa07fc92c29a8a9bcd2c4127ad8a5a76d09a5f67ee69734b6"
PINNED_ROOT_AFTER = "a73a412a638537bbb5f28c91f1b279c9f186b9924270aa8bb7d0a73763679dc8"


def _pinned_entries() -> dict[bytes, bytes]:
    return {
        hashlib.sha256(b"pin-%d" % i).digest()[: 1 + i % 9]: b"v%d" % (i * 7) for i in range(600)
    }


def test_the_root_of_fixed_entries_is_pinned() -> None:
    """The state root is consensus: a faster update must give the very same bytes."""
    entries = _pinned_entries()
    state = MerkleState(entries)
    assert state.root().hex() == PINNED_ROOT
    writes: dict[bytes, bytes | None] = {k: None for k in list(entries)[::5]}
    writes.update({b"new-%d" % i: b"w" * (i % 4) for i in range(100)})
    assert state.root_with(writes).hex() == PINNED_ROOT_AFTER
    state.apply(writes)
    assert state.root().hex() == PINNED_ROOT_AFTER
    assert len(state) == 576
