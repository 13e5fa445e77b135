"""Blocks that were executed but are not final yet, and the state each of them leaves.

PBFT and ePoB only ever execute a block on the committed head.  PoB does not: validators build
on the branch with the largest summed benefit and a block becomes final only once it is deep
enough, so a proposal or a received block may extend blocks that are still pending.  This keeps,
per pending block, its parent and its own writes; the state after a pending block is the
committed state under the writes of its pending ancestors, oldest first.  Pure and in memory:
pending blocks are re-fetched or re-built after a restart, only final blocks are stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PendingBlock:
    block_hash: bytes
    parent_hash: bytes
    height: int
    writes: Mapping[bytes, bytes | None]
    timestamp_ms: int = 0
    tx_hashes: frozenset[bytes] = frozenset()


class PendingChain:
    """Executed, not yet final blocks on top of the committed head (a tree, not a list)."""

    def __init__(self, head_hash: bytes, head_height: int) -> None:
        self._head_hash = head_hash
        self._head_height = head_height
        self._blocks: dict[bytes, PendingBlock] = {}

    def __contains__(self, block_hash: object) -> bool:
        return block_hash in self._blocks

    def __len__(self) -> int:
        return len(self._blocks)

    def knows_parent(self, parent_hash: bytes) -> bool:
        """Whether a block on ``parent_hash`` can be executed: the head or a pending block."""
        return parent_hash == self._head_hash or parent_hash in self._blocks

    def add(
        self,
        block_hash: bytes,
        parent_hash: bytes,
        height: int,
        writes: Mapping[bytes, bytes | None],
        *,
        timestamp_ms: int = 0,
        tx_hashes: frozenset[bytes] = frozenset(),
    ) -> None:
        if not self.knows_parent(parent_hash):
            raise KeyError(f"parent {parent_hash.hex()} is neither the head nor pending")
        self._blocks[block_hash] = PendingBlock(
            block_hash, parent_hash, height, dict(writes), timestamp_ms, tx_hashes
        )

    def get(self, block_hash: bytes) -> PendingBlock | None:
        return self._blocks.get(block_hash)

    def included_txs(self, block_hash: bytes) -> set[bytes]:
        """Hashes of the transactions in ``block_hash`` and its pending ancestors."""
        out: set[bytes] = set()
        for ancestor in self.ancestors(block_hash):
            out |= self._blocks[ancestor].tx_hashes
        return out

    def writes_after(self, block_hash: bytes) -> dict[bytes, bytes | None] | None:
        """The writes that take the committed state to the state after ``block_hash``.

        Empty for the committed head, None for a block this chain does not know.
        """
        if block_hash == self._head_hash:
            return {}
        path: list[PendingBlock] = []
        current = block_hash
        while current != self._head_hash:
            pending = self._blocks.get(current)
            if pending is None:
                return None
            path.append(pending)
            current = pending.parent_hash
        merged: dict[bytes, bytes | None] = {}
        for pending in reversed(path):
            merged.update(pending.writes)
        return merged

    def ancestors(self, block_hash: bytes) -> list[bytes]:
        """Pending blocks from ``block_hash`` back to (not including) the head, newest first."""
        out: list[bytes] = []
        current = block_hash
        while current in self._blocks:
            out.append(current)
            current = self._blocks[current].parent_hash
        return out

    def committed(self, head_hash: bytes, head_height: int) -> None:
        """The head moved: forget what is now final or can no longer become final.

        A pending block survives only if it descends from the new head; everything else is
        either the new head's own ancestry (now committed state) or a losing branch.
        """
        keep: dict[bytes, PendingBlock] = {}
        for block_hash, pending in self._blocks.items():
            if pending.height <= head_height:
                continue
            current = pending.parent_hash
            while current != head_hash and current in self._blocks:
                if self._blocks[current].height <= head_height:
                    break
                current = self._blocks[current].parent_hash
            if current == head_hash:
                keep[block_hash] = pending
        self._blocks = keep
        self._head_hash = head_hash
        self._head_height = head_height
