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
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from protocol.crypto import sha256
from protocol.merkle import (
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

    def scan(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Entries whose key starts with ``prefix``, in key order."""
        raise NotImplementedError


class MerkleState(StateReader):
    def __init__(self, entries: Mapping[bytes, bytes] | None = None) -> None:
        self._buckets: list[dict[bytes, bytes]] = [{} for _ in range(BUCKETS)]
        self._roots: list[bytes | None] = [None] * BUCKETS
        for k, v in (entries or {}).items():
            self._buckets[_bucket(k)][k] = v

    def __len__(self) -> int:
        return sum(len(b) for b in self._buckets)

    def get(self, key: bytes) -> bytes | None:
        return self._buckets[_bucket(key)].get(key)

    def scan(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        hits = [(k, v) for b in self._buckets for k, v in b.items() if k.startswith(prefix)]
        return iter(sorted(hits))

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        return iter(sorted((k, v) for b in self._buckets for k, v in b.items()))

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
            if v is None:
                self._buckets[i].pop(k, None)
            else:
                self._buckets[i][k] = v
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
    """Copy-on-write writes over a reader; nest one in another to try something and drop it."""

    def __init__(self, base: StateReader) -> None:
        self.base = base
        self.writes: dict[bytes, bytes | None] = {}

    def get(self, key: bytes) -> bytes | None:
        if key in self.writes:
            return self.writes[key]
        return self.base.get(key)

    def put(self, key: bytes, value: bytes) -> None:
        self.writes[key] = value

    def delete(self, key: bytes) -> None:
        self.writes[key] = None

    def scan(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        merged = dict(self.base.scan(prefix))
        for k, v in self.writes.items():
            if k.startswith(prefix):
                if v is None:
                    merged.pop(k, None)
                else:
                    merged[k] = v
        return iter(sorted(merged.items()))

    def merge_into_parent(self) -> None:
        """Fold this overlay's writes into its base, which must be an Overlay."""
        if not isinstance(self.base, Overlay):
            raise TypeError("only a nested overlay can be merged into its parent")
        self.base.writes.update(self.writes)
        self.writes = {}
