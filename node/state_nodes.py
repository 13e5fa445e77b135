"""The state tree's node store on a validator: LevelDB, the top of the tree in memory, and the
writes not yet committed.

market/state_tree.py reads tree nodes through a ``NodeStore`` and stays free of I/O; this is the
node's one.  The driver applies a block to the in-memory state (and so to the tree) before the
runtime writes the block's batch, so the nodes of an applied but not yet written block are kept
here and read before LevelDB; once the batch is written (:meth:`LedgerNodes.written`) LevelDB
answers for them.  Only the nodes a block touches are read, so the tree costs a few reads per
written key whatever the size of the state.

The top of the tree (depth :data:`CACHED_DEPTH` and above) is also kept in memory: every block
that writes a few thousand keys reads nearly all of it, and those reads were about 40 % of a
200-household block's LevelDB reads (ADR 0055).  It is bounded by the depth, not by the
state: at most ``2 ** (CACHED_DEPTH + 1) - 1`` positions (about 1.5 MB), absent ones included.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from gridchain.market.state import MerkleState
from gridchain.market.state_tree import nodes_of
from gridchain.node.store import Store

#: Tree positions at this depth or above are kept in memory once read or written (a position
#: starts with its depth as two big-endian bytes: market/state_tree.py ``position``).
CACHED_DEPTH: Final = 12
#: Positions below this one in byte order are those of depth CACHED_DEPTH or above.
_BELOW_TOP: Final = (CACHED_DEPTH + 1).to_bytes(2, "big")


def is_cached(position: bytes) -> bool:
    """Whether ``position`` is in the top of the tree that :class:`LedgerNodes` keeps."""
    return position < _BELOW_TOP


class LedgerNodes:
    """A ``market.state_tree.NodeStore`` over the ledger's ``N:`` keys."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._unwritten: dict[bytes, bytes | None] = {}
        #: the top of the tree as applied (committed or not): a record, or None for an empty
        #: position; kept current by :meth:`write_nodes`, which every change of the tree
        #: passes through (a state snapshot makes a new LedgerNodes)
        self._top: dict[bytes, bytes | None] = {}

    def get_node(self, position: bytes) -> bytes | None:
        if position in self._unwritten:
            return self._unwritten[position]
        top = self._top
        if position in top:
            return top[position]
        record = self._store.tree_node(position)
        if position < _BELOW_TOP:
            top[position] = record
        return record

    def write_nodes(self, writes: Mapping[bytes, bytes | None]) -> None:
        self._unwritten.update(writes)
        top = self._top
        for position, record in writes.items():
            if position < _BELOW_TOP:
                top[position] = record

    def written(self, writes: Mapping[bytes, bytes | None]) -> None:
        """``writes`` are in LevelDB now: forget them unless a later block rewrote them."""
        if self._unwritten == writes:
            # The usual case, one block applied and written: no later block rewrote anything.
            # (A later equal record would be LevelDB's too: forgetting it reads the same.)
            self._unwritten = {}
            return
        for position, record in writes.items():
            if position in self._unwritten and self._unwritten[position] is record:
                del self._unwritten[position]

    @property
    def unwritten(self) -> int:
        return len(self._unwritten)

    @property
    def cached(self) -> int:
        """Positions of the top of the tree held in memory."""
        return len(self._top)


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
