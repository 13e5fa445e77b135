"""The node's ledger: two LevelDBs, the live state and the history (ADR 0050).

The *live* LevelDB (the data directory) holds the metadata with the head height, the state, the
state tree's nodes and the consensus records: what a validator rewrites every block, bounded by
the live state.  The *history* LevelDB (``history/`` in it) holds the blocks, their hash and
transaction indexes and the archive of pruned entries: what only grows.  Kept apart, LevelDB's
compactions of the rewritten tree nodes no longer carry the whole history along, which is what
made a block's commit cost grow with the chain's age (ADR 0046, ADR 0050).

:meth:`Store.commit_block` writes two synced batches, the history's first (the block, its
indexes, its archive entries, the history head and an undo record naming those archive keys),
then the live one (state writes, tree nodes, the new head).  The live head is what is
committed.  A crash between the two leaves the history one block ahead; on the next open
that block is rolled back from the history (its indexes and archive keys deleted), so the
ledger is again all of a block or none of it, and the node commits it again.  A reader never
sees a head whose block is missing: the block is in the history before the head names it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import plyvel

from gridchain.node import store_schema as k
from gridchain.protocol.block import CommittedBlock, decode_committed
from gridchain.protocol.errors import GridchainError

#: LevelDB keeps up to this many table files open in all (its default is 1,000 per database).
#: A peer device's open-files limit is often 1,024, shared with the API's connections and the
#: peer links (ADR 0020 reserves 128 for everything but connections): more tables stay
#: readable, at the cost of reopening cold ones.  The live LevelDB is small and bounded; the
#: history gets the rest.
LEDGER_MAX_OPEN_FILES = 256
#: (LevelDB raises a value under 74 to 74, i.e. 64 tables: its own floor.)
LIVE_MAX_OPEN_FILES = 64
#: Why LevelDB's floor (ADR 0054): an open table stays mapped (LevelDB reads tables through
#: mmap), and the pages a read touched stay in the validator's RSS until the table is closed or
#: the node pages them out when quiet (node/ledger_pages.py).  The history is read rarely and
#: mostly in order (a peer or gateway following from genesis), so a table reopened now and then
#: costs little, while the bound on what can be mapped at once falls from 182 to 64 tables of
#: up to 2 MiB.  Within LEDGER_MAX_OPEN_FILES with the live LevelDB's share.
HISTORY_MAX_OPEN_FILES = 74
#: The live LevelDB holds hashes (tree nodes) and short records, which Snappy cannot shrink;
#: without it a compaction only copies (ADR 0050 measured the CPU it costs).
LIVE_OPTIONS: dict[str, Any] = {
    "max_open_files": LIVE_MAX_OPEN_FILES,
    "compression": None,
}
#: The history is read rarely (API, peers catching up): a small block cache; blocks compress.
HISTORY_OPTIONS: dict[str, Any] = {
    "max_open_files": HISTORY_MAX_OPEN_FILES,
    "lru_cache_size": 2 << 20,
}
#: Keys moved per batch by the migration of a schema-2 (single LevelDB) ledger.
MIGRATION_CHUNK = 4096


class StoreError(GridchainError):
    code = "store_error"
    http_status = 500


class WrongChainError(StoreError):
    """The data directory belongs to another chain (another genesis)."""

    code = "wrong_chain"


class LedgerLayoutError(StoreError):
    """The two LevelDBs of a data directory disagree in a way a crash cannot leave them (the
    history behind the live head, or a block missing from it): the data directory was edited
    or copied in parts."""

    code = "ledger_layout"


def _open(path: Path, options: Mapping[str, Any]) -> plyvel.DB:
    try:
        return plyvel.DB(str(path), create_if_missing=True, **options)
    except plyvel.IOError as exc:
        raise StoreError(f"node.data_dir: cannot open the ledger at {path}: {exc}") from None


class Store:
    def __init__(self, path: Path) -> None:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a file in the way, no permission: not a network problem
            raise StoreError(
                f"node.data_dir: cannot create the ledger directory {path}: {exc.strerror or exc}"
            ) from None
        self._db = _open(path, LIVE_OPTIONS)
        #: The history LevelDB's directory (inside the live one's: one data directory).
        self.history_path = path / k.HISTORY_DIR
        try:
            self._history = _open(self.history_path, HISTORY_OPTIONS)
        except StoreError:
            self._db.close()
            raise
        self.path = path
        try:
            if self._db.get(k.SCHEMA_VERSION) == k.SINGLE_DB_SCHEMA_VERSION:
                self._migrate_single_db()
            self._recover()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        for db in (self._db, self._history):
            if not db.closed:
                db.close()

    # --- opening: migration and recovery ----------------------------------------------------

    def _migrate_single_db(self) -> None:
        """Move a schema-2 ledger's blocks, indexes and archive into the history LevelDB.

        Copy everything first (synced), then delete it from the live LevelDB, then write the
        schema version: a crash at any point leaves version 2, and the next open copies again
        (the copies are idempotent) and carries on.  A ledger of a year moves gigabytes once.
        """
        head = self._db.get(k.HEAD_HEIGHT) or k.u64(0)
        for prefix in k.HISTORY_PREFIXES:
            self._move(self._db.iterator(prefix=prefix), self._history, sync=True)
        self._history.put(k.HISTORY_HEAD, head, sync=True)
        for prefix in k.HISTORY_PREFIXES:
            self._drop(self._db.iterator(prefix=prefix, include_value=False))
        self._db.put(k.SCHEMA_VERSION, k.CURRENT_SCHEMA_VERSION, sync=True)
        self._db.compact_range()

    @staticmethod
    def _move(items: Iterator[tuple[bytes, bytes]], target: plyvel.DB, *, sync: bool) -> None:
        batch = target.write_batch(sync=sync)
        for count, (key, value) in enumerate(items, start=1):
            batch.put(key, value)
            if count % MIGRATION_CHUNK == 0:
                batch.write()
                batch = target.write_batch(sync=sync)
        batch.write()

    def _drop(self, keys: Iterator[bytes]) -> None:
        batch = self._db.write_batch(sync=True)
        for count, key in enumerate(keys, start=1):
            batch.delete(key)
            if count % MIGRATION_CHUNK == 0:
                batch.write()
                batch = self._db.write_batch(sync=True)
        batch.write()

    def _history_head(self) -> int:
        raw = self._history.get(k.HISTORY_HEAD)
        return 0 if raw is None else k.from_u64(raw)

    def _recover(self) -> None:
        """Roll back a block whose history write landed and whose live write did not."""
        head, written = self.head_height(), self._history_head()
        if written == head:
            return
        if written < head:
            raise LedgerLayoutError(
                f"the ledger at {self.path}: its history ends at height {written}, below its "
                f"head {head} (was {k.HISTORY_DIR}/ removed or copied from elsewhere?)"
            )
        raw = self._history.get(k.block_key(written))
        undo = self._history.get(k.HISTORY_UNDO)
        if raw is None or undo is None or k.decode_undo(undo)[0] != written:
            raise LedgerLayoutError(
                f"the ledger at {self.path}: its history names block {written} above the head "
                f"{head} but does not hold it"
            )
        block = decode_committed(raw).block
        with self._history.write_batch(sync=True, transaction=True) as batch:
            batch.delete(k.block_key(written))
            batch.delete(k.block_hash_key(block.hash()))
            for tx in block.txs:
                batch.delete(k.tx_key(tx.hash()))
            for key in k.decode_undo(undo)[1]:
                batch.delete(k.archive_key(key))
            batch.delete(k.HISTORY_UNDO)
            batch.put(k.HISTORY_HEAD, k.u64(head))

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
        written under another schema (its state root means something else); a schema-2
        ledger was migrated when it was opened.
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
        """LevelDB's estimate of the memory it holds (memtables and block caches of both
        databases), 0 once closed: the part of a validator's RSS that Python's tracemalloc
        cannot see (docs/soak.md)."""
        total = 0
        for db in (self._db, self._history):
            if not db.closed:
                raw = db.get_property(b"leveldb.approximate-memory-usage")
                total += int(raw) if raw else 0
        return total

    def leveldb_stats(self) -> dict[str, str]:
        """LevelDB's own table of each database (``leveldb.stats``: files, size, compaction
        seconds, MB read and written per level; "" once closed).  One process's LevelDBs share
        one background thread, so this is the only way to tell whose compactions it ran."""
        out = {}
        for name, db in (("live", self._db), ("history", self._history)):
            raw = None if db.closed else db.get_property(b"leveldb.stats")
            out[name] = raw.decode() if raw else ""
        return out

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
        raw = self.get_block_raw(height)
        return None if raw is None else decode_committed(raw)

    def get_block_raw(self, height: int) -> bytes | None:
        if height > self.head_height():
            return None  # written to the history, not yet committed by the live head
        raw: bytes | None = self._history.get(k.block_key(height))
        return raw

    def height_of_block(self, block_hash: bytes) -> int | None:
        raw = self._history.get(k.block_hash_key(block_hash))
        if raw is None or k.from_u64(raw) > self.head_height():
            return None
        return k.from_u64(raw)

    def tx_location(self, tx_hash: bytes) -> tuple[int, int] | None:
        raw = self._history.get(k.tx_key(tx_hash))
        if raw is None:
            return None
        location = k.parse_tx_location(raw)
        return None if location[0] > self.head_height() else location

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
        raw: bytes | None = self._history.get(k.archive_key(key))
        return raw

    def archived_from(self, prefix: bytes, start: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Archived entries with ``prefix``, from ``start`` (a state key) on, in key order."""
        prefix_len = len(k.ARCHIVE)
        wanted = k.archive_key(prefix)
        for key, value in self._history.iterator(start=k.archive_key(max(prefix, start))):
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
        and make that block the head: the block into the history, then the state, tree and
        head in one synced live batch (node/state_sync.py checked the entries against the
        block's state root and the block's certificate).

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
        self._write_history(committed, {})
        self._write_live(height, entries, tree, snapshot=True)

    def commit_block(
        self,
        committed: CommittedBlock,
        state_writes: Mapping[bytes, bytes | None],
        tree_writes: Mapping[bytes, bytes | None],
        *,
        archived: Mapping[bytes, bytes],
        consensus: Mapping[bytes, bytes] | None = None,
    ) -> None:
        """Write the block, its indexes and the entries it pruned (``Execution.archived``) to
        the history, then its state writes, the state tree's node writes
        (``MerkleState.apply``'s answer) and the new head to the live state: two synced
        batches, in that order (the module's docstring says why that is crash-safe).

        ``consensus``: engine records (as :meth:`persist_consensus` writes them) that go into
        the live batch, so they cost no sync of their own (ADR 0051)."""
        height = committed.block.height
        if height != self.head_height() + 1:
            raise StoreError(f"commit of height {height} on head {self.head_height()}")
        self._write_history(committed, archived)
        self._write_live(
            height,
            state_writes.items(),
            tree_writes.items(),
            snapshot=False,
            consensus=consensus,
        )

    def _write_history(self, committed: CommittedBlock, archived: Mapping[bytes, bytes]) -> None:
        block = committed.block
        height = block.height
        with self._history.write_batch(sync=True, transaction=True) as batch:
            batch.put(k.block_key(height), committed.encode())
            batch.put(k.block_hash_key(block.hash()), k.u64(height))
            for index, tx in enumerate(block.txs):
                batch.put(k.tx_key(tx.hash()), k.tx_location(height, index))
            for key, value in archived.items():
                batch.put(k.archive_key(key), value)
            batch.put(k.HISTORY_UNDO, k.encode_undo(height, list(archived)))
            batch.put(k.HISTORY_HEAD, k.u64(height))

    def _write_live(
        self,
        height: int,
        state_writes: Iterable[tuple[bytes, bytes | None]],
        tree_writes: Iterable[tuple[bytes, bytes | None]],
        *,
        snapshot: bool,
        consensus: Mapping[bytes, bytes] | None = None,
    ) -> None:
        with self._db.write_batch(sync=True, transaction=True) as batch:
            if snapshot:
                for key in self._db.iterator(prefix=k.STATE, include_value=False):
                    batch.delete(key)
                for key in self._db.iterator(prefix=k.TREE, include_value=False):
                    batch.delete(key)
                batch.put(k.SYNC_BASE, k.u64(height))
            for key, value in state_writes:
                if value is None:
                    batch.delete(k.state_key(key))
                else:
                    batch.put(k.state_key(key), value)
            for position, record in tree_writes:
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
