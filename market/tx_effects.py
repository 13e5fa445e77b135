"""A transaction's effect remembered with what it read, reused where those values still hold.

Why: a proposer applies each transaction when its pool admits it and again when it builds the
block, in the same order on (usually) the same values.  Applying a transaction is a
deterministic function of the values it reads (and, for some kinds, of the block's context),
so if every key it read still has the value it had, it writes the same values: the block can
take the remembered writes instead of applying it again (Block-STM calls this validation).
Only transactions that read no context are remembered: those that commute
(market/commuting.py), plain transfers.  A value that differs, or a scan (a range read this
record cannot check), means applying it again, which is always correct.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from gridchain.market.state import Overlay, StateReader


class RecordingOverlay(Overlay):
    """An overlay that remembers the first value it read of each key from below it."""

    def __init__(self, base: StateReader) -> None:
        super().__init__(base)
        self.reads: dict[bytes, bytes | None] = {}
        self.scanned = False

    def get(self, key: bytes) -> bytes | None:
        if key in self.writes:
            return self.writes[key]
        if key in self.reads:
            return self.reads[key]
        value = self.base.get(key)
        self.reads[key] = value
        return value

    def scan_from(
        self, prefix: bytes, start: bytes | None, *, inclusive: bool
    ) -> Iterator[tuple[bytes, bytes]]:
        self.scanned = True
        return super().scan_from(prefix, start, inclusive=inclusive)

    def effect(self) -> TxEffect | None:
        """What was read and written, or None if it cannot be checked later (a scan, an
        archived entry); ask before merging the overlay into its parent (which empties it)."""
        if self.scanned or self.archived:
            return None
        return TxEffect(dict(self.reads), dict(self.writes))


@dataclass(frozen=True, slots=True)
class TxEffect:
    """The values a transaction read and the writes it made from them."""

    reads: dict[bytes, bytes | None]
    writes: dict[bytes, bytes | None]

    def holds_on(self, view: StateReader) -> bool:
        """Whether every key read still has the value read (so the writes are the same)."""
        return all(view.get(key) == value for key, value in self.reads.items())

    def apply_to(self, view: Overlay) -> None:
        for key, value in self.writes.items():
            if value is None:
                view.delete(key)
            else:
                view.put(key, value)
