"""The state tree's node store on a validator: LevelDB, with the writes not yet committed.

market/state_tree.py reads tree nodes through a ``NodeStore`` and stays free of I/O; this is the
node's one.  The driver applies a block to the in-memory state (and so to the tree) before the
runtime writes the block's batch, so the nodes of an applied but not yet written block are kept
here and read before LevelDB; once the batch is written (:meth:`LedgerNodes.written`) LevelDB
answers for them.  Only the nodes a block touches are read, so the tree costs a few reads per
written key whatever the size of the state.
"""

from __future__ import annotations

from collections.abc import Mapping

from gridchain.market.state import MerkleState
from gridchain.market.state_tree import nodes_of
from gridchain.node.store import Store


class LedgerNodes:
    """A ``market.state_tree.NodeStore`` over the ledger's ``N:`` keys."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._unwritten: dict[bytes, bytes | None] = {}

    def get_node(self, position: bytes) -> bytes | None:
        if position in self._unwritten:
            return self._unwritten[position]
        return self._store.tree_node(position)

    def write_nodes(self, writes: Mapping[bytes, bytes | None]) -> None:
        self._unwritten.update(writes)

    def written(self, writes: Mapping[bytes, bytes | None]) -> None:
        """``writes`` are in LevelDB now: forget them unless a later block rewrote them."""
        for position, record in writes.items():
            if position in self._unwritten and self._unwritten[position] is record:
                del self._unwritten[position]

    @property
    def unwritten(self) -> int:
        return len(self._unwritten)


def bind_genesis(store: Store, chain_id: bytes, genesis_doc: bytes, genesis: MerkleState) -> bool:
    """Bind ``store`` to its chain with the genesis state and its tree (Store.bind_chain)."""
    tree = nodes_of(dict(genesis.items()))
    return store.bind_chain(chain_id, genesis_doc, genesis.items(), tree.items())


def ledger_state(store: Store) -> tuple[MerkleState, LedgerNodes]:
    """The committed state of ``store``, its tree read from the ledger (no rebuild).

    The caller checks the root against the head block's state root: that is what vouches for
    the stored tree.
    """
    nodes = LedgerNodes(store)
    return MerkleState(dict(store.state_items()), nodes=nodes), nodes
