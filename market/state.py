"""Application state as sorted key-value pairs with a Merkle commitment.

The state root must be equal on every honest validator after every block, must change with every
write, and should let a light client check one value without the whole state.  The commitment is
the sparse Merkle tree of market/state_tree.py (ADR 0027, superseding the bucketed tree of ADR
0003): a block rehashes the ~log2(n) nodes on the path of each key it writes, so its cost
follows what it touches, not the size of the state.

:class:`MerkleState` holds the committed entries in memory (the live state is bounded) and the
tree's nodes in a :class:`~gridchain.market.state_tree.NodeStore` (LevelDB on a node, a dict in
tests and in the simulator).  :class:`Overlay` is a copy-on-write view used to execute a block or
check a transaction without touching the committed state: its ``writes`` are exactly what the
node stores in the block's atomic batch.

Both keep their keys in sorted order as well (a ``SortedList``), because the order books walk
their price levels in key order one entry at a time: ``scan(prefix, after=key)`` is a lazy
iteration that starts in O(log n) instead of sorting the whole state on every step.  The index
is only an access path: the root is computed from the tree.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from sortedcontainers import SortedList

from gridchain.market import state_tree as tree
from gridchain.market.state_tree import NodeStore, NodeWrites, TreeUpdate

#: Tree updates remembered per committed version: ``root_with`` of a proposal and ``apply`` of
#: the same writes at commit share one computation (pob may try a few candidates per height).
#: They are found by comparing the writes themselves (a C comparison of two dicts), not their
#: tree items, which cost two SHA-256 per write to form (ADR 0055).
_REMEMBERED_UPDATES = 8


@dataclass(frozen=True, slots=True)
class StateProof:
    """Proof that ``key`` has ``value`` under a state root: the sibling hashes on the key's
    path in the tree, from the root down."""

    key: bytes
    value: bytes
    siblings: tuple[bytes, ...]

    def verify(self, root: bytes) -> bool:
        if any(len(s) != 32 for s in self.siblings) or len(self.siblings) > 256:
            return False
        return tree.root_from_path(self.key, self.value, self.siblings) == root


class StateReader:
    """Read access shared by the committed state and overlays."""

    def get(self, key: bytes) -> bytes | None:
        raise NotImplementedError

    def scan(self, prefix: bytes, after: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        """Entries whose key starts with ``prefix`` (and is greater than ``after``), in key order.

        The iteration is lazy: take what you need, and do not write to the reader while an
        iteration over it is open (start a new one after a write).
        """
        return self.scan_from(prefix, after, inclusive=False)

    def scan_from(
        self, prefix: bytes, start: bytes | None, *, inclusive: bool
    ) -> Iterator[tuple[bytes, bytes]]:
        """Entries with ``prefix`` from ``start`` on (``start`` itself if ``inclusive``)."""
        raise NotImplementedError


def _keys_from(
    keys: SortedList, prefix: bytes, start: bytes | None, inclusive: bool
) -> Iterator[bytes]:
    """Keys of a sorted list that start with ``prefix``, from ``start`` on."""
    lo = prefix if start is None or start < prefix else start
    for key in keys.irange(minimum=lo):
        if not key.startswith(prefix):
            return
        if inclusive or key != start:
            yield key


class MerkleState(StateReader):
    """The committed state: entries in memory, the tree in ``nodes``.

    Without ``nodes`` the tree is built in memory from ``entries``.  With ``nodes`` (a node
    reopening its ledger) the stored tree is taken as the tree of ``entries``; the caller checks
    its root against the head block's state root, which is what makes that safe.
    """

    def __init__(
        self, entries: Mapping[bytes, bytes] | None = None, *, nodes: NodeStore | None = None
    ) -> None:
        self._entries: dict[bytes, bytes] = dict(entries or {})
        self._keys = SortedList(self._entries)
        self._remembered: list[tuple[dict[bytes, bytes | None], TreeUpdate]] = []
        self.nodes: NodeStore = tree.nodes_of(self._entries) if nodes is None else nodes

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: bytes) -> bytes | None:
        return self._entries.get(key)

    def scan_from(
        self, prefix: bytes, start: bytes | None, *, inclusive: bool
    ) -> Iterator[tuple[bytes, bytes]]:
        entries = self._entries
        for key in _keys_from(self._keys, prefix, start, inclusive):
            yield key, entries[key]

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        return iter([(k, self._entries[k]) for k in self._keys])

    def root(self) -> bytes:
        return tree.root_of(self.nodes)

    def _update(self, writes: Mapping[bytes, bytes | None]) -> TreeUpdate:
        for known_writes, known in self._remembered:
            if known_writes == writes:
                return known
        known = tree.update(self.nodes, tree.items_of(writes))
        if len(self._remembered) >= _REMEMBERED_UPDATES:
            del self._remembered[0]
        self._remembered.append((dict(writes), known))
        return known

    def root_with(self, writes: Mapping[bytes, bytes | None]) -> bytes:
        """The root the state would have after ``writes``, without applying them."""
        return self._update(writes).root

    def tree_writes(self, writes: Mapping[bytes, bytes | None]) -> NodeWrites:
        """The node writes ``apply(writes)`` would make, without applying them."""
        return self._update(writes).nodes

    def apply(self, writes: Mapping[bytes, bytes | None]) -> NodeWrites:
        """Apply ``writes``; return the tree's node writes (the node stores them in the same
        batch as the block, after which its node store reads them from LevelDB)."""
        update = self._update(writes)
        for k, v in writes.items():
            if v is None:
                if self._entries.pop(k, None) is not None:
                    self._keys.remove(k)
            else:
                if k not in self._entries:
                    self._keys.add(k)
                self._entries[k] = v
        self._remembered = []
        self.nodes.write_nodes(update.nodes)
        return update.nodes

    def prove(self, key: bytes) -> StateProof | None:
        value = self._entries.get(key)
        if value is None:
            return None
        siblings = tree.path_to(self.nodes, key)
        if siblings is None:  # pragma: no cover - the tree holds every entry
            raise AssertionError("state entry missing from the tree")
        return StateProof(key=key, value=value, siblings=siblings)


class Overlay(StateReader):
    """Copy-on-write writes over a reader; nest one in another to try something and drop it.

    ``writes`` is the plain dict of what this view changed (``None`` = deleted).  The sorted
    list of its keys that ordered scans need is built on the first scan and kept up to date
    from then on, so views that never scan (a transfer) pay nothing for it.

    Deletions stay in ``writes`` as tombstones, and an order book deletes its best entries as
    they trade, so a block's view soon has many tombstones at the head of a book.  So that
    walking a book does not step over them again and again, the view remembers per scanned
    prefix a *floor*: no live key with that prefix is below it (None: there is none at all).
    A scan from the start begins at the floor and moves it up to the first live key it finds;
    a write of a live key below the floor lowers it.  Each tombstone is then passed once.
    """

    def __init__(self, base: StateReader) -> None:
        self.base = base
        self.writes: dict[bytes, bytes | None] = {}
        #: Entries this view moved out of the live state (:meth:`archive`), with the value
        #: they had: the node keeps them in its archive index, outside the state root.
        self.archived: dict[bytes, bytes] = {}
        self._sorted: SortedList | None = None
        self._floor: dict[bytes, bytes | None] = {}
        #: the lengths of the prefixes in ``_floor``: a put looks up its own key's prefixes of
        #: those lengths instead of testing every floor (a block scans thousands of prefixes,
        #: one per meter, party or slot, and puts hundreds of thousands of keys: ADR 0046)
        self._floor_lengths: set[int] = set()

    def get(self, key: bytes) -> bytes | None:
        if key in self.writes:
            return self.writes[key]
        return self.base.get(key)

    def put(self, key: bytes, value: bytes) -> None:
        if self._sorted is not None and key not in self.writes:
            self._sorted.add(key)
        self.writes[key] = value
        if self._floor:
            floors = self._floor
            size = len(key)
            for length in self._floor_lengths:
                if length > size:
                    continue
                prefix = key[:length]
                if prefix in floors:
                    floor = floors[prefix]
                    if floor is None or key < floor:
                        floors[prefix] = key

    def _set_floor(self, prefix: bytes, floor: bytes | None) -> None:
        self._floor[prefix] = floor
        self._floor_lengths.add(len(prefix))

    def delete(self, key: bytes) -> None:
        if self._sorted is not None and key not in self.writes:
            self._sorted.add(key)
        self.writes[key] = None

    def archive(self, key: bytes) -> None:
        """Move ``key`` out of the live state (a deletion) and remember its last value, so the
        node can still serve it (ADR 0027: pruning).  Nothing happens if it is absent."""
        value = self.get(key)
        if value is None:
            return
        self.archived[key] = value
        self.delete(key)

    def _written_keys(self) -> SortedList:
        # Rebuilt if ``writes`` was changed behind put/delete (its size no longer matches);
        # the floors may then be wrong too, so they are forgotten.
        if self._sorted is None or len(self._sorted) != len(self.writes):
            self._sorted = SortedList(self.writes)
            self._floor = {}
            self._floor_lengths = set()
        return self._sorted

    def scan_from(
        self, prefix: bytes, start: bytes | None, *, inclusive: bool
    ) -> Iterator[tuple[bytes, bytes]]:
        own_keys = self._written_keys()
        tracking = start is None  # the first live key found is the prefix's floor
        if prefix in self._floor:
            floor = self._floor[prefix]
            if floor is None:
                return  # nothing live under this prefix
            if start is None or start < floor or (start == floor and inclusive):
                start, inclusive, tracking = floor, True, True
        writes = self.writes
        own = _keys_from(own_keys, prefix, start, inclusive)
        base = self.base.scan_from(prefix, start, inclusive=inclusive)
        mine = next(own, None)
        theirs = next(base, None)
        while mine is not None or theirs is not None:
            if mine is None or (theirs is not None and theirs[0] < mine):
                assert theirs is not None
                if tracking:
                    self._set_floor(prefix, theirs[0])
                    tracking = False
                yield theirs
                theirs = next(base, None)
                continue
            if theirs is not None and theirs[0] == mine:
                theirs = next(base, None)  # overwritten or deleted here
            value = writes[mine]
            if value is not None:
                if tracking:
                    self._set_floor(prefix, mine)
                    tracking = False
                yield mine, value
            mine = next(own, None)
        if tracking:
            self._set_floor(prefix, None)

    def merge_into_parent(self) -> None:
        """Fold this overlay's writes into its base, which must be an Overlay."""
        if not isinstance(self.base, Overlay):
            raise TypeError("only a nested overlay can be merged into its parent")
        parent = self.base
        for key, value in self.writes.items():
            if value is None:
                parent.delete(key)
            else:
                parent.put(key, value)
        parent.archived.update(self.archived)
        self.writes = {}
        self.archived = {}
        self._sorted = None
        self._floor = {}
        self._floor_lengths = set()
