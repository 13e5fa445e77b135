"""When to send a waiting transaction to the peers again.

Gossip sends each admitted transaction once.  A peer that refuses it for a reason that may not
hold later (its mempool is full; a nonce gap, because it refused the sender's previous
transaction for the same reason) does not remember it, and nobody sends it again.  If that peer
is the proposer (PBFT's primary), the transaction waits in the other pools forever and every
later transaction of its sender is refused there as a nonce gap: the sender is locked out.

So a transaction still pending here ``after_ms`` after it arrived is flooded again, then after
twice that, and so on up to ``max_backoff_ms``; the pool's arrival order is kept, so a peer
receives a sender's transactions in nonce order.  Under normal load a transaction commits long
before it is due, and nothing is re-sent.  This is pure bookkeeping on a clock reading the caller
passes in; the runtime owns the timer and the sockets.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(slots=True)
class _Due:
    at_ms: int
    attempts: int


class Reannouncer:
    """Tracks, per pending transaction hash, when it is next due to be flooded again."""

    def __init__(self, *, after_ms: int, max_backoff_ms: int, max_per_round: int) -> None:
        if not 0 < after_ms <= max_backoff_ms:
            raise ValueError("need 0 < after_ms <= max_backoff_ms")
        if max_per_round < 1:
            raise ValueError("max_per_round must be at least 1")
        self.after_ms = after_ms
        self.max_backoff_ms = max_backoff_ms
        self.max_per_round = max_per_round
        self._due: dict[bytes, _Due] = {}

    def __len__(self) -> int:
        return len(self._due)

    def due(self, pending: Iterable[bytes], now_ms: int) -> list[bytes]:
        """The hashes of ``pending`` (pool order) to flood again now, oldest first.

        A hash seen for the first time becomes due ``after_ms`` from now; one that left the pool
        is forgotten.  At most ``max_per_round`` come back; the rest stay due for the next round,
        so a large backlog is spread over several rounds rather than sent in one burst.
        """
        still: dict[bytes, _Due] = {}
        out: list[bytes] = []
        for tx_hash in pending:
            entry = self._due.get(tx_hash)
            if entry is None:
                entry = _Due(now_ms + self.after_ms, 0)
            elif entry.at_ms <= now_ms and len(out) < self.max_per_round:
                out.append(tx_hash)
                entry.attempts += 1
                backoff = min(self.after_ms << entry.attempts, self.max_backoff_ms)
                entry.at_ms = now_ms + backoff
            still[tx_hash] = entry
        self._due = still
        return out
