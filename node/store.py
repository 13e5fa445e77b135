"""The node's LevelDB ledger: blocks, their certificates, the transaction index and the state.

The one write that matters is :meth:`Store.commit_block`: the block, its certificate, its
index entries, every state write it produced and the new head height go into a single
LevelDB write batch written with ``sync=True``.  LevelDB applies a batch atomically through its
log, so after a power cut or ``kill -9`` the store holds either all of a block or none of it,
and the head always names a block whose state is fully present.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import plyvel

from gridchain.node import store_schema as k
from gridchain.protocol.block import CommittedBlock, decode_committed
from gridchain.protocol.errors import GridchainError

#: LevelDB keeps up to this many table files open (its default is 1,000).  A peer device's
#: open-files limit is often 1,024, shared with the API's connections and the peer links
#: (ADR 0020 reserves 128 for everything but connections): more tables stay readable, at the
#: cost of reopening cold ones.
LEDGER_MAX_OPEN_FILES = 256


class StoreError(GridchainError):
    code = "store_error"
    http_status = 500


class WrongChainError(StoreError):
    """The data directory belongs to another chain (another genesis)."""

    code = "wrong_chain"


class Store:
    def __init__(self, path: Path) -> None:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a file in the way, no permission: not a network problem
            raise StoreError(
                f"node.data_dir: cannot create the ledger directory {path}: {exc.strerror or exc}"
            ) from None
        try:
            self._db = plyvel.DB(
                str(path), create_if_missing=True, max_open_files=LEDGER_MAX_OPEN_FILES
            )
        except plyvel.IOError as exc:
            raise StoreError(f"node.data_dir: cannot open the ledger at {path}: {exc}") from None
        self.path = path

    def close(self) -> None:
        if not self._db.closed:
            self._db.close()

    # --- chain identity -------------------------------------------------------------------

    def bind_chain(
        self,
        chain_id: bytes,
        genesis_doc: bytes,
        genesis_state: Iterator[tuple[bytes, bytes]],
        genesis_tree: Iterator[tuple[bytes, bytes]],
    ) -> bool:
        """Bind a new ledger to its chain with the genesis state and its tree's nodes, in one
        synced batch.

        Returns True when the ledger was new.  A ledger of another chain is refused, so a
        validator can never mix two chains' blocks in one data directory; so is a ledger
        written under another schema (its state root means something else).
        """
        existing = self._db.get(k.CHAIN_ID)
        if existing is None:
            with self._db.write_batch(sync=True, transaction=True) as batch:
                for key, value in genesis_state:
                    batch.put(k.state_key(key), value)
                for position, record in genesis_tree:
                    batch.put(k.tree_key(position), record)
                batch.put(k.GENESIS_DOC, genesis_doc)
                batch.put(k.SCHEMA_VERSION, k.CURRENT_SCHEMA_VERSION)
                batch.put(k.HEAD_HEIGHT, k.u64(0))
                batch.put(k.CHAIN_ID, chain_id)
            return True
        if existing != chain_id:
            raise WrongChainError(
                f"the ledger at {self.path} belongs to chain {existing.hex()}, "
                f"not {chain_id.hex()} (wrong genesis for this data directory?)"
            )
        version = self._db.get(k.SCHEMA_VERSION)
        if version != k.CURRENT_SCHEMA_VERSION:
            raise StoreError(
                f"the ledger at {self.path} was written under schema "
                f"{(version or b'?').decode(errors='replace')}, this node writes "
                f"{k.CURRENT_SCHEMA_VERSION.decode()}: start from an empty data directory"
            )
        return False

    # --- reads ------------------------------------------------------------------------------

    def memory_bytes(self) -> int:
        """LevelDB's estimate of the memory it holds (memtables and block cache), 0 once closed:
        the part of a validator's RSS that Python's tracemalloc cannot see (docs/soak.md)."""
        if self._db.closed:
            return 0
        raw = self._db.get_property(b"leveldb.approximate-memory-usage")
        return int(raw) if raw else 0

    def head_height(self) -> int:
        raw = self._db.get(k.HEAD_HEIGHT)
        return 0 if raw is None else k.from_u64(raw)

    def sync_base(self) -> int:
        """The height of the state snapshot this ledger started from (0: it replayed from
        genesis); blocks below it are not stored (ADR 0039)."""
        raw = self._db.get(k.SYNC_BASE)
        return 0 if raw is None else k.from_u64(raw)

    def pin_state(self) -> StateSnapshot:
        """The committed head and live state as they are now, unchanged by later commits."""
        return StateSnapshot(self._db.snapshot())

    def get_block(self, height: int) -> CommittedBlock | None:
        raw = self._db.get(k.block_key(height))
        return None if raw is None else decode_committed(raw)

    def get_block_raw(self, height: int) -> bytes | None:
        raw: bytes | None = self._db.get(k.block_key(height))
        return raw

    def height_of_block(self, block_hash: bytes) -> int | None:
        raw = self._db.get(k.block_hash_key(block_hash))
        return None if raw is None else k.from_u64(raw)

    def tx_location(self, tx_hash: bytes) -> tuple[int, int] | None:
        raw = self._db.get(k.tx_key(tx_hash))
        return None if raw is None else k.parse_tx_location(raw)

    def state_items(self) -> Iterator[tuple[bytes, bytes]]:
        prefix_len = len(k.STATE)
        for key, value in self._db.iterator(prefix=k.STATE):
            yield key[prefix_len:], value

    def tree_node(self, position: bytes) -> bytes | None:
        """A node of the state tree (market/state_tree.py) as last committed."""
        raw: bytes | None = self._db.get(k.tree_key(position))
        return raw

    def archived(self, key: bytes) -> bytes | None:
        """A pruned state entry's last value (the archive index; ADR 0027)."""
        raw: bytes | None = self._db.get(k.archive_key(key))
        return raw

    def archived_from(self, prefix: bytes, start: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Archived entries with ``prefix``, from ``start`` (a state key) on, in key order."""
        prefix_len = len(k.ARCHIVE)
        wanted = k.archive_key(prefix)
        for key, value in self._db.iterator(start=k.archive_key(max(prefix, start))):
            if not key.startswith(wanted):
                return
            yield key[prefix_len:], value

    def tree_items(self) -> Iterator[tuple[bytes, bytes]]:
        prefix_len = len(k.TREE)
        for key, value in self._db.iterator(prefix=k.TREE):
            yield key[prefix_len:], value

    def consensus_records(self) -> dict[bytes, bytes]:
        prefix_len = len(k.CONSENSUS)
        return {key[prefix_len:]: v for key, v in self._db.iterator(prefix=k.CONSENSUS)}

    # --- writes -----------------------------------------------------------------------------

    def persist_consensus(self, records: Mapping[bytes, bytes]) -> None:
        """Synced before the messages that depend on these records are sent."""
        with self._db.write_batch(sync=True) as batch:
            for key, value in records.items():
                batch.put(k.consensus_key(key), value)

    def install_snapshot(
        self,
        committed: CommittedBlock,
        entries: Iterable[tuple[bytes, bytes]],
        tree: Iterable[tuple[bytes, bytes]],
    ) -> None:
        """Replace the live state and its tree by a verified snapshot at ``committed``'s height
        and make that block the head, in one synced batch (node/state_sync.py checked the
        entries against the block's state root and the block's certificate).

        Blocks, indexes, archive and consensus records already stored stay: a long-offline
        validator keeps its old history and its vote records; nothing between its old head
        and the snapshot is stored.
        """
        block = committed.block
        height = block.height
        if height <= self.head_height():
            raise StoreError(
                f"snapshot at height {height} is not above the head {self.head_height()}"
            )
        with self._db.write_batch(sync=True, transaction=True) as batch:
            for key in self._db.iterator(prefix=k.STATE, include_value=False):
                batch.delete(key)
            for key in self._db.iterator(prefix=k.TREE, include_value=False):
                batch.delete(key)
            for key, value in entries:
                batch.put(k.state_key(key), value)
            for position, record in tree:
                batch.put(k.tree_key(position), record)
            batch.put(k.block_key(height), committed.encode())
            batch.put(k.block_hash_key(block.hash()), k.u64(height))
            for index, tx in enumerate(block.txs):
                batch.put(k.tx_key(tx.hash()), k.tx_location(height, index))
            batch.put(k.SYNC_BASE, k.u64(height))
            batch.put(k.HEAD_HEIGHT, k.u64(height))

    def commit_block(
        self,
        committed: CommittedBlock,
        state_writes: Mapping[bytes, bytes | None],
        tree_writes: Mapping[bytes, bytes | None],
        *,
        archived: Mapping[bytes, bytes],
        consensus: Mapping[bytes, bytes] | None = None,
    ) -> None:
        """Write the block, its indexes, its state writes, the state tree's node writes
        (``MerkleState.apply``'s answer) and the entries it pruned into the archive
        (``Execution.archived``) in one synced batch.

        ``consensus``: engine records (as :meth:`persist_consensus` writes them) that go into
        the same batch, so a height costs one sync instead of one per record (ADR 0051)."""
        block = committed.block
        height = block.height
        if height != self.head_height() + 1:
            raise StoreError(f"commit of height {height} on head {self.head_height()}")
        with self._db.write_batch(sync=True, transaction=True) as batch:
            batch.put(k.block_key(height), committed.encode())
            batch.put(k.block_hash_key(block.hash()), k.u64(height))
            for index, tx in enumerate(block.txs):
                batch.put(k.tx_key(tx.hash()), k.tx_location(height, index))
            for key, value in state_writes.items():
                if value is None:
                    batch.delete(k.state_key(key))
                else:
                    batch.put(k.state_key(key), value)
            for key, value in archived.items():
                batch.put(k.archive_key(key), value)
            for position, record in tree_writes.items():
                if record is None:
                    batch.delete(k.tree_key(position))
                else:
                    batch.put(k.tree_key(position), record)
            for key, value in (consensus or {}).items():
                batch.put(k.consensus_key(key), value)
            batch.put(k.HEAD_HEIGHT, k.u64(height))


class StateSnapshot:
    """A LevelDB snapshot of the ledger: its head and live state as of :meth:`Store.pin_state`,
    read in key order while blocks keep committing (state sync serves one; ADR 0039)."""

    def __init__(self, snapshot: plyvel.Snapshot) -> None:
        self._snapshot = snapshot
        raw = snapshot.get(k.HEAD_HEIGHT)
        self.height = 0 if raw is None else k.from_u64(raw)

    def entries_after(
        self, after: bytes, budget: int, max_entries: int
    ) -> tuple[list[tuple[bytes, bytes]], bool]:
        """State entries with keys after ``after`` (b"": from the first), in key order, at most
        ``max_entries`` and ``budget`` bytes of keys and values (at least one entry); and
        whether they reach the end of the state."""
        prefix_len = len(k.STATE)
        start = k.state_key(after) if after else k.STATE
        out: list[tuple[bytes, bytes]] = []
        used = 0
        for key, value in self._snapshot.iterator(
            start=start, stop=_after_prefix(k.STATE), include_start=not after
        ):
            size = len(key) - prefix_len + len(value)
            if out and (used + size > budget or len(out) >= max_entries):
                return out, False
            out.append((key[prefix_len:], value))
            used += size
        return out, True

    def close(self) -> None:
        self._snapshot.close()


def _after_prefix(prefix: bytes) -> bytes:
    """The first key after every key that starts with ``prefix`` (its last byte + 1)."""
    return prefix[:-1] + bytes([prefix[-1] + 1])
