"""The state the API reads: the live state with the archive of pruned entries behind it.

market/pruning.py moves closed orders, settled contracts, old receipts and consumed readings out
of the live state; the store keeps each one's last value under ``A:`` (node/store_schema.py).
Keys are never reused (order ids, trade ids, reading sequences), so a key is live or archived,
never both, and the union of the two is everything the chain ever promised: the API reads it
through :class:`ServedState` with the market's own accessors and answers as before pruning
(ADR 0027).  Consensus never reads the archive.
"""

from __future__ import annotations

from collections.abc import Iterator

from gridchain.market.state import StateReader
from gridchain.node.store import Store


class ServedState(StateReader):
    """``live`` first, then the store's archive; scans merge the two in key order."""

    def __init__(self, live: StateReader, store: Store) -> None:
        self._live = live
        self._store = store

    def get(self, key: bytes) -> bytes | None:
        value = self._live.get(key)
        if value is not None:
            return value
        return self._store.archived(key)

    def scan_from(
        self, prefix: bytes, start: bytes | None, *, inclusive: bool
    ) -> Iterator[tuple[bytes, bytes]]:
        live = self._live.scan_from(prefix, start, inclusive=inclusive)
        archived = self._archived_from(prefix, start, inclusive)
        mine, theirs = next(live, None), next(archived, None)
        while mine is not None or theirs is not None:
            if theirs is None or (mine is not None and mine[0] <= theirs[0]):
                assert mine is not None
                if theirs is not None and theirs[0] == mine[0]:
                    theirs = next(archived, None)  # the live value wins
                yield mine
                mine = next(live, None)
            else:
                yield theirs
                theirs = next(archived, None)

    def _archived_from(
        self, prefix: bytes, start: bytes | None, inclusive: bool
    ) -> Iterator[tuple[bytes, bytes]]:
        for key, value in self._store.archived_from(prefix, start or prefix):
            if not inclusive and key == start:
                continue
            yield key, value
