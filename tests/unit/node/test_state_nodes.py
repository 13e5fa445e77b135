"""The validator's node store of the state tree (node/state_nodes.py): LevelDB, the top of the
tree kept in memory (ADR 0055), and the nodes of a block applied but not yet written.

Why: the top of the tree is read by every block and was the part of LevelDB's reads worth
holding; if the memory were not kept current by every write, the next update would build on
stale nodes and the root would silently diverge from a fresh validator's.  These tests hold
every position the memory answers for to LevelDB's record, the roots to a from-scratch tree,
and count (not time) the LevelDB reads the memory saves.
"""

from __future__ import annotations

from pathlib import Path

from gridchain.market.state import MerkleState
from gridchain.market.state_tree import position
from gridchain.node.state_nodes import CACHED_DEPTH, LedgerNodes, is_cached, ledger_state
from gridchain.node.store import Store
from gridchain.protocol.block import CommittedBlock
from gridchain.protocol.crypto import SigningKey
from tests.helpers import certify, make_block

CHAIN = b"\x12" * 32
KEY = SigningKey(b"\x06" * 32)


class _CountingStore(Store):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.reads: list[bytes] = []

    def tree_node(self, position: bytes) -> bytes | None:
        self.reads.append(position)
        return super().tree_node(position)


def _write(
    store: Store,
    height: int,
    writes: dict[bytes, bytes | None],
    tree: dict[bytes, bytes | None],
    root: bytes,
) -> None:
    block = make_block(CHAIN, height, b"\x00" * 32, state_root=root)
    store.commit_block(
        CommittedBlock(block, certify(block, [KEY], CHAIN)), writes, tree, archived={}
    )


def _commit(
    store: Store,
    nodes: LedgerNodes,
    state: MerkleState,
    height: int,
    writes: dict[bytes, bytes | None],
) -> None:
    tree = state.apply(writes)
    block = make_block(CHAIN, height, b"\x00" * 32, state_root=state.root())
    store.commit_block(
        CommittedBlock(block, certify(block, [KEY], CHAIN)), writes, tree, archived={}
    )
    nodes.written(tree)


def _batch(height: int, live: dict[bytes, bytes]) -> dict[bytes, bytes | None]:
    """Rewrites, deletions (which move leaves up through the top of the tree) and new keys."""
    writes: dict[bytes, bytes | None] = {k: None for k in list(live)[height % 3 :: 4]}
    writes.update({k: b"again-%d" % height for k in list(live)[1::7]})
    writes.update({b"key-%d-%d" % (height, i): b"v" for i in range(300)})
    return writes


def test_the_top_of_the_tree_in_memory_stays_the_ledgers_and_the_root_a_fresh_trees(
    tmp_path: Path,
) -> None:
    store = _CountingStore(tmp_path / "ledger")
    store.bind_chain(CHAIN, b"{}", iter(()), iter(()))
    state, nodes = ledger_state(store)
    live: dict[bytes, bytes] = {}
    for height in range(1, 9):
        writes = _batch(height, live)
        _commit(store, nodes, state, height, writes)
        for key, value in writes.items():
            if value is None:
                live.pop(key, None)
            else:
                live[key] = value
        assert state.root() == MerkleState(live).root()
        assert nodes.unwritten == 0
        # Every position the memory answers for is LevelDB's record (None: no node there).
        assert nodes.cached > 0
        for pos, record in nodes._top.items():
            assert is_cached(pos)
            assert store.tree_node(pos) == record
    assert nodes.cached < 2 ** (CACHED_DEPTH + 1)
    # A ledger opened again (no memory yet) has the same tree.
    store.close()
    reopened = Store(tmp_path / "ledger")
    try:
        again, _ = ledger_state(reopened)
        assert again.root() == state.root() == MerkleState(live).root()
    finally:
        reopened.close()


def test_an_update_reads_no_top_position_from_leveldb_twice(tmp_path: Path) -> None:
    store = _CountingStore(tmp_path / "ledger")
    try:
        store.bind_chain(CHAIN, b"{}", iter(()), iter(()))
        state, nodes = ledger_state(store)
        live = {b"seed-%d" % i: b"s" for i in range(2000)}
        _commit(store, nodes, state, 1, dict(live))
        state.root_with({b"seed-%d" % i: b"t" for i in range(0, 2000, 3)})
        first = [p for p in store.reads if is_cached(p)]
        store.reads.clear()
        state.root_with({b"seed-%d" % i: b"u" for i in range(1, 2000, 3)})
        again = [p for p in store.reads if is_cached(p)]
        assert first  # the first update read the top of the tree from LevelDB...
        assert not set(again) & set(first)  # ...and no later one reads it again
        assert len(again) == len(set(again))
        assert [p for p in store.reads if not is_cached(p)]  # deeper nodes still come from it
    finally:
        store.close()


def test_the_top_is_depth_twelve_and_above() -> None:
    digest = bytes(range(32))
    assert [is_cached(position(depth, digest)) for depth in range(40)] == [
        depth <= CACHED_DEPTH for depth in range(40)
    ]


def test_nodes_of_a_later_block_outlive_the_write_of_an_earlier_one(tmp_path: Path) -> None:
    """Two blocks applied before the first is written (the runtime's commit queue): writing
    the first forgets only the nodes the second did not rewrite."""
    store = Store(tmp_path / "ledger")
    try:
        store.bind_chain(CHAIN, b"{}", iter(()), iter(()))
        state, nodes = ledger_state(store)
        _commit(store, nodes, state, 1, {b"seed-%d" % i: b"s" for i in range(500)})
        w1: dict[bytes, bytes | None] = {b"seed-%d" % i: b"t" for i in range(0, 500, 2)}
        w2: dict[bytes, bytes | None] = {b"seed-%d" % i: b"u" for i in range(0, 500, 4)}
        first = state.apply(w1)
        second = state.apply(w2)
        root = state.root()
        _write(store, 2, w1, first, root)
        nodes.written(first)
        assert 0 < nodes.unwritten <= len(second)
        for pos, record in second.items():
            assert nodes.get_node(pos) == record
        live = {
            b"seed-%d" % i: b"u" if i % 4 == 0 else b"t" if i % 2 == 0 else b"s" for i in range(500)
        }
        assert state.root() == MerkleState(live).root()
        _write(store, 3, w2, second, root)
        nodes.written(second)
        assert nodes.unwritten == 0
        again, _ = ledger_state(store)
        assert again.root() == root
    finally:
        store.close()
