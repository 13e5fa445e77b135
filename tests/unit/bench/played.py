"""Reading a played ledger in bench state tests."""

from __future__ import annotations

from pathlib import Path

from gridchain.node.store import Store


def block_at(path: Path, height: int | None = None) -> tuple[int, bytes]:
    """(height, block hash) of the ledger at ``path``, its head by default: the hash covers the
    header and so the state root, the transactions and the previous block."""
    store = Store(path)
    try:
        at = store.head_height() if height is None else height
        committed = store.get_block(at)
        assert committed is not None
        return at, committed.block.hash()
    finally:
        store.close()
