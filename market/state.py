"""Application state as sorted key-value pairs with a Merkle commitment.

The state root must be equal on every honest validator after every block, must change with every
write, and should let a light client check one value without the whole state.  Keys are spread
over 256 buckets by the first byte of SHA-256(key); each bucket is an RFC 6962 tree over its
entries sorted by key, and the root is the tree over the 256 bucket roots.  A block rehashes only
the buckets it touched, and an inclusion proof is the bucket path plus the top path (see
docs/adr/0003-state-root.md).

:class:`MerkleState` holds the committed state in memory (a community chain's state is small;
the node loads it from LevelDB at start).  :class:`Overlay` is a copy-on-write view used to
execute a block or check a transaction without touching the committed state: its ``writes`` are
exactly what the node stores in the block's atomic batch.

Both keep their keys in sorted order as well (a ``SortedList``), because the order books walk
their price levels in key order one entry at a time: ``scan(prefix, after=key)`` is a lazy
iteration that starts in O(log n) instead of sorting the whole state on every step.  The index
is only an access path: the root is computed from the buckets exactly as before.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from sortedcontainers import SortedList

from gridchain.protocol.crypto import sha256
from gridchain.protocol.merkle import (
    inclusion_proof,
    leaf_hash,
    root_from_inclusion,
    root_of_hashes,
    verify_inclusion,
)

BUCKETS = 256


def _bucket(key: bytes) -> int:
    return sha256(key)[0]


def entry_hash(key: bytes, value: bytes) -> bytes:
    return leaf_hash(len(key).to_bytes(4, "big") + key + value)


def _bucket_root(entries: Mapping[bytes, bytes]) -> bytes:
    return root_of_hashes([entry_hash(k, entries[k]) for k in sorted(entries)])


@dataclass(frozen=True, slots=True)
class StateProof:
    """Proof that ``key`` has ``value`` under a state root."""

    key: bytes
    value: bytes
    bucket: int
    index: int
    bucket_size: int
    bucket_path: tuple[bytes, ...]
    top_path: tuple[bytes, ...]

    def verify(self, root: bytes) -> bool:
        leaf = entry_hash(self.key, self.value)
        # Recompute the bucket root from the leaf, then check it under the top root.
        bucket_root = root_from_inclusion(leaf, self.index, self.bucket_size, self.bucket_path)
        if bucket_root is None:
            return False
        return verify_inclusion(bucket_root, self.bucket, BUCKETS, self.top_path, root)


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
    def __init__(self, entries: Mapping[bytes, bytes] | None = None) -> None:
        self._buckets: list[dict[bytes, bytes]] = [{} for _ in range(BUCKETS)]
        self._roots: list[bytes | None] = [None] * BUCKETS
        for k, v in (entries or {}).items():
            self._buckets[_bucket(k)][k] = v
        self._keys = SortedList(entries or ())

    def __len__(self) -> int:
        return sum(len(b) for b in self._buckets)

    def get(self, key: bytes) -> bytes | None:
        return self._buckets[_bucket(key)].get(key)

    def scan_from(
        self, prefix: bytes, start: bytes | None, *, inclusive: bool
    ) -> Iterator[tuple[bytes, bytes]]:
        buckets = self._buckets
        for key in _keys_from(self._keys, prefix, start, inclusive):
            yield key, buckets[_bucket(key)][key]

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        return iter([(k, self._buckets[_bucket(k)][k]) for k in self._keys])

    def _root_of(self, i: int) -> bytes:
        root = self._roots[i]
        if root is None:
            root = _bucket_root(self._buckets[i])
            self._roots[i] = root
        return root

    def root(self) -> bytes:
        return root_of_hashes([self._root_of(i) for i in range(BUCKETS)])

    def root_with(self, writes: Mapping[bytes, bytes | None]) -> bytes:
        """The root the state would have after ``writes``, without applying them."""
        touched: dict[int, dict[bytes, bytes]] = {}
        for k, v in writes.items():
            i = _bucket(k)
            bucket = touched.setdefault(i, dict(self._buckets[i]))
            if v is None:
                bucket.pop(k, None)
            else:
                bucket[k] = v
        roots = [
            _bucket_root(touched[i]) if i in touched else self._root_of(i) for i in range(BUCKETS)
        ]
        return root_of_hashes(roots)

    def apply(self, writes: Mapping[bytes, bytes | None]) -> None:
        for k, v in writes.items():
            i = _bucket(k)
            bucket = self._buckets[i]
            if v is None:
                if bucket.pop(k, None) is not None:
                    self._keys.remove(k)
            else:
                if k not in bucket:
                    self._keys.add(k)
                bucket[k] = v
            self._roots[i] = None

    def prove(self, key: bytes) -> StateProof | None:
        i = _bucket(key)
        bucket = self._buckets[i]
        if key not in bucket:
            return None
        keys = sorted(bucket)
        index = keys.index(key)
        hashes = [entry_hash(k, bucket[k]) for k in keys]
        return StateProof(
            key=key,
            value=bucket[key],
            bucket=i,
            index=index,
            bucket_size=len(keys),
            bucket_path=tuple(inclusion_proof(hashes, index)),
            top_path=tuple(inclusion_proof([self._root_of(j) for j in range(BUCKETS)], i)),
        )


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
        self._sorted: SortedList | None = None
        self._floor: dict[bytes, bytes | None] = {}

    def get(self, key: bytes) -> bytes | None:
        if key in self.writes:
            return self.writes[key]
        return self.base.get(key)

    def put(self, key: bytes, value: bytes) -> None:
        if self._sorted is not None and key not in self.writes:
            self._sorted.add(key)
        self.writes[key] = value
        if self._floor:
            for prefix, floor in self._floor.items():
                if (floor is None or key < floor) and key.startswith(prefix):
                    self._floor[prefix] = key

    def delete(self, key: bytes) -> None:
        if self._sorted is not None and key not in self.writes:
            self._sorted.add(key)
        self.writes[key] = None

    def _written_keys(self) -> SortedList:
        # Rebuilt if ``writes`` was changed behind put/delete (its size no longer matches);
        # the floors may then be wrong too, so they are forgotten.
        if self._sorted is None or len(self._sorted) != len(self.writes):
            self._sorted = SortedList(self.writes)
            self._floor = {}
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
                    self._floor[prefix] = theirs[0]
                    tracking = False
                yield theirs
                theirs = next(base, None)
                continue
            if theirs is not None and theirs[0] == mine:
                theirs = next(base, None)  # overwritten or deleted here
            value = writes[mine]
            if value is not None:
                if tracking:
                    self._floor[prefix] = mine
                    tracking = False
                yield mine, value
            mine = next(own, None)
        if tracking:
            self._floor[prefix] = None

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
        self.writes = {}
        self._sorted = None
        self._floor = {}
