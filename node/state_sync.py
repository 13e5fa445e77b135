"""State sync: a validator far behind its peers starts from a certified state snapshot (ADR 0039).

Replaying every block from genesis costs a joining (or long-offline) validator time in
proportion to the chain's age; the live state is bounded (ADR 0027), so fetching it costs in
proportion to the community instead.  The joiner asks one peer for the live state as of that
peer's head, in chunks of entries in key order (the peer pins a LevelDB snapshot for the
transfer, so blocks keep committing meanwhile), then fetches the block at that height with its
commit certificate, checks the certificate under the engine's commit rule, rebuilds the sparse
Merkle tree of the entries and compares its root with the block's state root.  Only a set that
matches is installed (:meth:`node.store.Store.install_snapshot`); the blocks after it come by
the ordinary catch-up.  A peer whose state does not match is refused with
:class:`SnapshotRootMismatchError` and the next peer is tried.

Nothing a peer sends is trusted before the root check: the chunks are only ordered and
bounded on arrival (:data:`MAX_SNAPSHOT_BYTES`), which also bounds the joiner's memory.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

import structlog

from gridchain.market.state_tree import MemoryNodes, nodes_of, root_of
from gridchain.node.p2p.frames import MAX_STATE_ENTRIES_PER_CHUNK, StateChunk
from gridchain.node.store import StateSnapshot, Store
from gridchain.protocol.block import CommittedBlock, decode_committed
from gridchain.protocol.errors import DecodeError, GridchainError

#: Most bytes of keys and values a joiner accepts for one snapshot: far above a community's
#: live state (about 21,600 entries, a few MB, after a simulated week: docs/state.md), and a
#: bound on what a lying peer can make it hold before the root check.
MAX_SNAPSHOT_BYTES = 512 * 1024 * 1024
#: Snapshots a validator keeps pinned for joiners at once, and for how long after the last
#: request (a pinned LevelDB snapshot keeps the files it reads from alive).
MAX_PINNED = 2
PIN_IDLE_S = 60.0

_log = structlog.get_logger("gridchain.state_sync")


class SnapshotError(GridchainError):
    """A peer's snapshot cannot be used (out of order, too large, gone, no certified block)."""

    code = "bad_snapshot"


class SnapshotRootMismatchError(SnapshotError):
    """The entries a peer sent do not hash to the state root of the certified block."""

    code = "snapshot_root_mismatch"


class StateSyncingError(GridchainError):
    """The node is installing a state snapshot and does not take part yet."""

    code = "state_syncing"
    http_status = 503


# --- serving ---------------------------------------------------------------------------------


@dataclass(slots=True)
class _Pin:
    snapshot: StateSnapshot
    used_at: float


class SnapshotServer:
    """Serves chunks of pinned snapshots of ``store`` (node.p2p.network.SnapshotService).

    Height 0 pins the current head (or reuses a pin of it); a named height is served while its
    pin lives.  At most :data:`MAX_PINNED` pins, each closed after :data:`PIN_IDLE_S` unused.
    """

    def __init__(self, store: Store, clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._clock = clock
        self._pins: dict[int, _Pin] = {}

    def state_chunk(
        self, height: int, after: bytes, budget: int
    ) -> tuple[int, list[tuple[bytes, bytes]], bool]:
        now = self._clock()
        self._expire(now)
        pin = self._pin(now) if height == 0 else self._pins.get(height)
        if pin is None:
            return 0, [], True
        pin.used_at = now
        entries, last = pin.snapshot.entries_after(after, budget, MAX_STATE_ENTRIES_PER_CHUNK)
        return pin.snapshot.height, entries, last

    def close(self) -> None:
        for pin in self._pins.values():
            pin.snapshot.close()
        self._pins.clear()

    def _pin(self, now: float) -> _Pin | None:
        head = self._store.head_height()
        if head == 0:
            return None  # the genesis state: nothing to skip
        if head in self._pins:
            return self._pins[head]
        if len(self._pins) >= MAX_PINNED:
            oldest = min(self._pins, key=lambda h: self._pins[h].used_at)
            self._pins.pop(oldest).snapshot.close()
        snapshot = self._store.pin_state()
        pin = _Pin(snapshot, now)
        self._pins[snapshot.height] = pin
        return pin

    def _expire(self, now: float) -> None:
        for height in [h for h, p in self._pins.items() if now - p.used_at > PIN_IDLE_S]:
            self._pins.pop(height).snapshot.close()


# --- joining ---------------------------------------------------------------------------------


class SnapshotPeers(Protocol):
    """What a joiner needs from the peer network (node.p2p.PeerNetwork)."""

    def peer_heights(self) -> dict[bytes, int]: ...

    async def fetch_state(self, peer: bytes, height: int, after: bytes) -> StateChunk: ...

    async def fetch_blocks(self, from_height: int, count: int) -> list[bytes]: ...


@dataclass(frozen=True, slots=True)
class VerifiedSnapshot:
    """A live state whose tree's root is the state root of a certified block."""

    committed: CommittedBlock
    entries: dict[bytes, bytes]
    tree: MemoryNodes

    @property
    def height(self) -> int:
        return self.committed.block.height


def verify_snapshot(committed: CommittedBlock, entries: Mapping[bytes, bytes]) -> MemoryNodes:
    """The tree of ``entries``, if its root is ``committed``'s state root; else
    :class:`SnapshotRootMismatchError`.  The caller has checked the certificate."""
    tree = nodes_of(entries)
    root = root_of(tree)
    expected = committed.block.header.state_root
    if root != expected:
        raise SnapshotRootMismatchError(
            f"the snapshot's {len(entries)} entries hash to {root.hex()[:16]}, block "
            f"{committed.block.height} certifies {expected.hex()[:16]}"
        )
    return tree


async def fetch_snapshot(
    peers: SnapshotPeers,
    peer: bytes,
    check_block: Callable[[CommittedBlock], None],
) -> VerifiedSnapshot:
    """Fetch ``peer``'s snapshot at its head and verify it (see the module docstring).

    ``check_block`` raises unless the block's certificate proves it committed (the engine's
    commit rule).  Raises :class:`SnapshotError` (or its root mismatch) or the network's
    StateFetchError; installs nothing.
    """
    entries: dict[bytes, bytes] = {}
    size = 0
    height = 0
    after = b""
    while True:
        chunk = await peers.fetch_state(peer, height, after)
        if chunk.height == 0 or (height and chunk.height != height):
            raise SnapshotError("the peer holds no snapshot at that height (expired?)")
        height = chunk.height
        if len(chunk.keys) != len(chunk.values):
            raise SnapshotError("a chunk's keys and values differ in number")
        for key, value in zip(chunk.keys, chunk.values, strict=True):
            if key <= after:
                raise SnapshotError("a chunk's keys are not in ascending order")
            entries[key] = value
            after = key
            size += len(key) + len(value)
        if size > MAX_SNAPSHOT_BYTES:
            raise SnapshotError(f"the snapshot exceeds {MAX_SNAPSHOT_BYTES} bytes")
        if chunk.last:
            break
        if not chunk.keys:
            raise SnapshotError("an empty chunk that is not the last")
    committed = await _certified_block(peers, height, check_block)
    return VerifiedSnapshot(committed, entries, verify_snapshot(committed, entries))


async def _certified_block(
    peers: SnapshotPeers, height: int, check_block: Callable[[CommittedBlock], None]
) -> CommittedBlock:
    raws = await peers.fetch_blocks(height, 1)
    if not raws:
        raise SnapshotError(f"no peer served block {height}")
    try:
        committed = decode_committed(raws[0])
    except DecodeError as exc:
        raise SnapshotError(f"block {height} does not decode: {exc.message}") from None
    if committed.block.height != height:
        raise SnapshotError(f"asked for block {height}, got {committed.block.height}")
    check_block(committed)
    return committed


async def sync_from_peers(
    peers: SnapshotPeers,
    local_height: int,
    min_gap: int,
    check_block: Callable[[CommittedBlock], None],
    wait_for_peers: Callable[[], Awaitable[dict[bytes, int]]],
) -> VerifiedSnapshot | None:
    """A verified snapshot from the first peer (highest first) that serves one, when the peers
    are at least ``min_gap`` blocks ahead of ``local_height``; None otherwise (the node then
    catches up block by block, as before)."""
    heights = await wait_for_peers()
    ahead = sorted(
        (p for p, h in heights.items() if h - local_height >= min_gap),
        key=lambda p: -heights[p],
    )
    if not ahead:
        return None
    for peer in ahead:
        try:
            return await fetch_snapshot(peers, peer, check_block)
        except GridchainError as exc:
            _log.warning(
                "state snapshot refused", peer=peer.hex()[:16], code=exc.code, reason=exc.message
            )
    return None
