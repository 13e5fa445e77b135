"""A sparse Merkle tree over the state: work per block grows with what the block writes.

Why not the bucketed tree of ADR 0003: it rehashed every entry of every bucket a block touched,
so a block's cost grew with the size of the state (issue 17 measured x2.3 in 30 blocks).  Here
each key sits at a path given by the 256 bits of SHA-256(key); the tree is *compact*: a subtree
that holds one entry is that entry's leaf, placed as high as it can be, and an empty subtree is
32 zero bytes.  So a write rehashes the ~log2(n) nodes on its path, and the root is a function
of the contents only (the shape depends on the set of key hashes, never on the order of writes:
ADR 0027).

    leaf   = SHA-256(0x00 || SHA-256(key) || value)
    inner  = SHA-256(0x01 || left || right)
    empty  = 32 zero bytes

A subtree whose one non-empty child is a leaf is that leaf (the leaf moves up); a subtree whose
one non-empty child is an inner node stays an inner node with an empty sibling.

The nodes are kept in a :class:`NodeStore` under their *position* (depth and path prefix), so
the store holds exactly the current tree and a write overwrites in place.  This module does no
I/O: the node backs the store with LevelDB (node/state_nodes.py), the tests and the simulator
with :class:`MemoryNodes`.  A record is ``b"L" + key hash + leaf hash`` or ``b"I" + left hash
+ right hash``.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

EMPTY = bytes(32)
LEAF = 0x4C  # b"L"
INNER = 0x49  # b"I"
ROOT_POSITION = b"\x00\x00"

#: (key hash, leaf hash or None for a deletion), sorted by key hash.
Item = tuple[bytes, bytes | None]
NodeWrites = dict[bytes, bytes | None]


def key_hash(key: bytes) -> bytes:
    return hashlib.sha256(key).digest()


def leaf_of(key_digest: bytes, value: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + key_digest + value).digest()


def inner_of(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


#: Lookup tables of the update's hot path (ADR 0055): a depth's two-byte head, the mask that
#: keeps the bits of a byte above a position, and the one-byte strings.
_DEPTH_HEAD: Final = tuple(depth.to_bytes(2, "big") for depth in range(257))
_HIGH_BITS: Final = tuple((0xFF00 >> bits) & 0xFF for bits in range(8))
_BYTES: Final = tuple(bytes([value]) for value in range(256))


def position(depth: int, digest: bytes) -> bytes:
    """Where the node at ``depth`` on the path of ``digest`` is stored (depth, then the prefix)."""
    whole = depth >> 3
    bits = depth & 7
    if bits == 0:
        return _DEPTH_HEAD[depth] + digest[:whole]
    return _DEPTH_HEAD[depth] + digest[:whole] + _BYTES[digest[whole] & _HIGH_BITS[bits]]


def bit(digest: bytes, depth: int) -> int:
    return (digest[depth >> 3] >> (7 - (depth & 7))) & 1


def _with_bit(digest: bytes, depth: int, value: int) -> bytes:
    raw = bytearray(digest)
    mask = 1 << (7 - (depth & 7))
    raw[depth >> 3] = (raw[depth >> 3] | mask) if value else (raw[depth >> 3] & ~mask)
    return bytes(raw)


def _hash_of(record: bytes | None) -> bytes:
    if record is None:
        return EMPTY
    if record[0] == LEAF:
        return record[33:65]
    return inner_of(record[1:33], record[33:65])


class NodeStore(Protocol):
    """Where the tree's nodes live: ``get_node`` reads a position, ``write_nodes`` applies the
    writes of one update (None deletes a position)."""

    def get_node(self, position: bytes) -> bytes | None: ...

    def write_nodes(self, writes: Mapping[bytes, bytes | None]) -> None: ...


class MemoryNodes:
    """A node store in a dict: the tests', the simulator's, and genesis's before it is stored."""

    def __init__(self) -> None:
        self.nodes: dict[bytes, bytes] = {}

    def get_node(self, position: bytes) -> bytes | None:
        return self.nodes.get(position)

    def write_nodes(self, writes: Mapping[bytes, bytes | None]) -> None:
        for pos, record in writes.items():
            if record is None:
                self.nodes.pop(pos, None)
            else:
                self.nodes[pos] = record

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        return iter(sorted(self.nodes.items()))


@dataclass(frozen=True, slots=True)
class TreeUpdate:
    """The root after some writes and the node writes that get there from the current tree."""

    root: bytes
    nodes: NodeWrites


def items_of(writes: Mapping[bytes, bytes | None]) -> list[Item]:
    """State writes as tree items, sorted by key hash (the order the tree splits them in)."""
    out: list[Item] = []
    for key, value in writes.items():
        digest = key_hash(key)
        out.append((digest, None if value is None else leaf_of(digest, value)))
    out.sort(key=lambda item: item[0])
    return out


def _split(digests: Sequence[bytes], lo: int, hi: int, depth: int) -> int:
    """First index in ``digests[lo:hi]`` (sorted key hashes) whose bit ``depth`` is set (they
    share the bits above, so the bit is sorted): a C bisection on the smallest hash with the
    shared prefix and that bit set."""
    byte, bits = depth >> 3, depth & 7
    shift = 7 - bits
    first = digests[lo]
    if (first[byte] >> shift) & 1:
        return lo
    if not (digests[hi - 1][byte] >> shift) & 1:
        return hi
    threshold = first[:byte] + _BYTES[(first[byte] & _HIGH_BITS[bits]) | (1 << shift)]
    return bisect_left(digests, threshold, lo, hi)


_sha256 = hashlib.sha256
#: Per depth, how :func:`position` forms its children's positions: their depth's head, the
#: whole bytes of the prefix and the mask of the partial byte (0: none).
_CHILD_AT: Final = tuple(
    (
        _DEPTH_HEAD[depth + 1],
        (depth + 1) >> 3,
        _HIGH_BITS[(depth + 1) & 7] if (depth + 1) & 7 else 0,
    )
    for depth in range(256)
)


class _Updater:
    """One update of the tree: reads go to the store, writes collect in ``out``.

    The hot path of every block (ADR 0055): the key hashes are kept in a list of their own so
    that splitting a range at a bit is a C bisection, and the store's read is a bound method.
    """

    __slots__ = ("digests", "items", "out", "read")

    def __init__(self, store: NodeStore, items: Sequence[Item]) -> None:
        self.items = items
        self.digests = [digest for digest, _ in items]
        self.read = store.get_node
        self.out: NodeWrites = {}

    def get(self, pos: bytes) -> bytes | None:
        out = self.out
        if pos in out:
            return out[pos]
        return self.read(pos)

    def put(self, pos: bytes, old: bytes | None, new: bytes | None) -> None:
        if old != new:
            self.out[pos] = new

    def update(self, depth: int, record: bytes | None, lo: int, hi: int) -> bytes | None:
        """The new record of the node at ``depth`` (currently ``record``) after
        ``items[lo:hi]``, all of which lie under it.  Writes of its descendants go to ``out``;
        the caller writes the node itself."""
        if lo == hi:
            return record
        if record is None or record[0] == LEAF:
            return self.build(depth, self._leaves(record, lo, hi))
        digests = self.digests
        out = self.out
        mid = _split(digests, lo, hi, depth)
        left_hash, right_hash = record[1:33], record[33:65]
        some = digests[lo]
        child = depth + 1
        head, whole, mask = _CHILD_AT[depth]
        # A touched side's position comes from one of its own key hashes; the other side's is
        # needed only when it may have to move up.
        left_pos = right_pos = b""
        left: bytes | bool | None = False  # False: untouched (read only if needed)
        right: bytes | bool | None = False
        if lo < mid:
            left_pos = head + some[:whole] + (_BYTES[some[whole] & mask] if mask else b"")
            old = out[left_pos] if left_pos in out else self.read(left_pos)
            left = self.update(child, old, lo, mid)
            if left != old:
                out[left_pos] = left
            if left is None:
                left_hash = EMPTY
            elif left[0] == LEAF:
                left_hash = left[33:65]
            else:
                left_hash = _sha256(b"\x01" + left[1:65]).digest()
        if mid < hi:
            theirs = digests[mid]
            right_pos = head + theirs[:whole] + (_BYTES[theirs[whole] & mask] if mask else b"")
            old = out[right_pos] if right_pos in out else self.read(right_pos)
            right = self.update(child, old, mid, hi)
            if right != old:
                out[right_pos] = right
            if right is None:
                right_hash = EMPTY
            elif right[0] == LEAF:
                right_hash = right[33:65]
            else:
                right_hash = _sha256(b"\x01" + right[1:65]).digest()
        if left_hash == EMPTY:
            if right_hash == EMPTY:
                return None
            other_pos, other = right_pos, right
        elif right_hash == EMPTY:
            other_pos, other = left_pos, left
        else:
            return b"I" + left_hash + right_hash
        # One child left: if it is a leaf it moves up to this position.
        if other is False:
            other_pos = position(child, _with_bit(some, depth, left_hash == EMPTY))
            other = self.get(other_pos)
        assert other is None or isinstance(other, bytes)
        if other is not None and other[0] == LEAF:
            out[other_pos] = None
            return other
        return b"I" + left_hash + right_hash

    def _leaves(self, record: bytes | None, lo: int, hi: int) -> list[tuple[bytes, bytes]]:
        """The leaves under a position that held ``record`` (a leaf or nothing) after
        ``items[lo:hi]``, sorted by key hash."""
        leaves = [(d, h) for d, h in self.items[lo:hi] if h is not None]
        if record is not None:
            digest = record[1:33]
            at = bisect_left(self.digests, digest, lo, hi)
            if at == hi or self.digests[at] != digest:
                leaves.append((digest, record[33:65]))
                leaves.sort(key=lambda leaf: leaf[0])
        return leaves

    def build(self, depth: int, leaves: list[tuple[bytes, bytes]]) -> bytes | None:
        """The record of a subtree over ``leaves`` where nothing was stored below ``depth``;
        its descendants are written to ``out``."""
        if not leaves:
            return None
        if len(leaves) == 1:
            digest, leaf = leaves[0]
            return b"L" + digest + leaf
        return self._build(depth, [digest for digest, _ in leaves], leaves, 0, len(leaves))

    def _build(
        self,
        depth: int,
        digests: list[bytes],
        leaves: list[tuple[bytes, bytes]],
        lo: int,
        hi: int,
    ) -> bytes:
        """:meth:`build` over ``leaves[lo:hi]`` (two or more), ``digests`` their key hashes."""
        mid = _split(digests, lo, hi, depth)
        child = depth + 1
        out = self.out
        if lo < mid:
            if mid - lo == 1:
                left = b"L" + leaves[lo][0] + leaves[lo][1]
                left_hash = leaves[lo][1]
            else:
                left = self._build(child, digests, leaves, lo, mid)
                left_hash = _sha256(b"\x01" + left[1:65]).digest()
            out[position(child, digests[lo])] = left
        else:
            left_hash = EMPTY
        if mid < hi:
            if hi - mid == 1:
                right = b"L" + leaves[mid][0] + leaves[mid][1]
                right_hash = leaves[mid][1]
            else:
                right = self._build(child, digests, leaves, mid, hi)
                right_hash = _sha256(b"\x01" + right[1:65]).digest()
            out[position(child, digests[mid])] = right
        else:
            right_hash = EMPTY
        return b"I" + left_hash + right_hash


def update(store: NodeStore, items: Sequence[Item]) -> TreeUpdate:
    """The root after ``items`` (see :func:`items_of`) and the node writes; the store is only
    read (apply the writes with ``store.write_nodes``)."""
    updater = _Updater(store, items)
    old = store.get_node(ROOT_POSITION)
    new = updater.update(0, old, 0, len(items))
    updater.put(ROOT_POSITION, old, new)
    return TreeUpdate(_hash_of(new), updater.out)


def nodes_of(entries: Mapping[bytes, bytes]) -> MemoryNodes:
    """The tree of ``entries`` built from nothing, in memory."""
    memory = MemoryNodes()
    memory.write_nodes(update(memory, items_of(entries)).nodes)
    return memory


def root_of(store: NodeStore) -> bytes:
    return _hash_of(store.get_node(ROOT_POSITION))


def path_to(store: NodeStore, key: bytes) -> tuple[bytes, ...] | None:
    """The sibling hashes from the root down to ``key``'s leaf, or None if it is absent."""
    digest = key_hash(key)
    siblings: list[bytes] = []
    depth = 0
    record = store.get_node(ROOT_POSITION)
    while record is not None and record[0] == INNER:
        side = bit(digest, depth)
        siblings.append(record[1:33] if side else record[33:65])
        depth += 1
        record = store.get_node(position(depth, digest))
    if record is None or record[1:33] != digest:
        return None
    return tuple(siblings)


def root_from_path(key: bytes, value: bytes, siblings: Sequence[bytes]) -> bytes:
    """The root a leaf of ``key`` = ``value`` gives with ``siblings`` (root first)."""
    digest = key_hash(key)
    node = leaf_of(digest, value)
    for depth in range(len(siblings) - 1, -1, -1):
        sibling = siblings[depth]
        node = inner_of(sibling, node) if bit(digest, depth) else inner_of(node, sibling)
    return node
