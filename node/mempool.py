"""A bounded pool of checked transactions waiting for a block.

Every admitted transaction has been applied, in arrival order, to a *pending state*: an overlay
on the committed state.  A new transaction is checked against that pending state, so a sender
can queue several transfers whose nonces follow each other and cannot overspend across them,
and a block built from the pool in arrival order always executes.  After each commit the pool
drops what was included and re-applies the rest on the new state (CometBFT calls this
"recheck"), discarding what no longer applies.

Re-applying is a validator's second largest per-transaction cost after the signature check: a
follower's pool is in gossip arrival order, the proposer's block in the proposer's, so after
almost every commit the whole rest of the pool would be applied again.  So each pending
transaction remembers the keys it read and the writes it made; given the keys the block wrote,
a recheck re-applies only the transactions that read something that may have changed (a key
the block or a removed or re-applied transaction wrote), that scanned a key range, or whose
kind depends on the block context (market.app.context_free), and keeps the recorded writes of
the rest, which applying again would reproduce exactly.

The pool is bounded by count and bytes and says why it refuses a transaction with a typed error.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass

from gridchain.market.app import Application, BlockContext, context_free
from gridchain.market.errors import ApplicationError
from gridchain.market.state import MerkleState, Overlay, StateReader
from gridchain.protocol.errors import GridchainError
from gridchain.protocol.tx import Transaction


class MempoolError(GridchainError):
    code = "mempool_refused"


class MempoolFullError(MempoolError):
    code = "mempool_full"
    http_status = 503


class DuplicateTxError(MempoolError):
    code = "duplicate_tx"
    http_status = 409


class _ReadRecorder(StateReader):
    """A view of ``base`` that records which keys and key ranges were read through it."""

    __slots__ = ("base", "keys", "scanned")

    def __init__(self, base: StateReader) -> None:
        self.base = base
        self.keys: set[bytes] = set()
        self.scanned = False

    def get(self, key: bytes) -> bytes | None:
        self.keys.add(key)
        return self.base.get(key)

    def scan_from(
        self, prefix: bytes, start: bytes | None, *, inclusive: bool
    ) -> Iterator[tuple[bytes, bytes]]:
        self.scanned = True  # a range read: any change could matter, so always re-applied
        return self.base.scan_from(prefix, start, inclusive=inclusive)


def _merge(writes: dict[bytes, bytes | None], into: Overlay) -> None:
    for key, value in writes.items():
        if value is None:
            into.delete(key)
        else:
            into.put(key, value)


@dataclass(frozen=True, slots=True)
class PendingTx:
    """An admitted transaction with what it read and wrote when last applied to the pool."""

    tx: Transaction
    tx_hash: bytes
    size: int
    writes: dict[bytes, bytes | None]
    #: the keys it read; None when applying it again may differ even on the same state (its
    #: body depends on the block context, or it read a key range such as an order book)
    reads: frozenset[bytes] | None

    def unaffected_by(self, changed: set[bytes]) -> bool:
        """Whether applying it again, after keys ``changed`` got new values, is known to
        produce ``writes`` again."""
        return self.reads is not None and self.reads.isdisjoint(changed)


def _pending(
    tx: Transaction, tx_hash: bytes, size: int, reads: _ReadRecorder, trial: Overlay
) -> PendingTx:
    reusable = context_free(tx) and not reads.scanned
    return PendingTx(tx, tx_hash, size, trial.writes, frozenset(reads.keys) if reusable else None)


class Mempool:
    def __init__(
        self,
        app: Application,
        state: MerkleState,
        context: Callable[[], BlockContext],
        *,
        max_txs: int,
        max_bytes: int,
    ) -> None:
        self._app = app
        self._state = state
        self._context = context
        self.max_txs = max_txs
        self.max_bytes = max_bytes
        self._txs: dict[bytes, PendingTx] = {}  # insertion order = arrival order
        self._bytes = 0
        self._pending = Overlay(state)

    def __len__(self) -> int:
        return len(self._txs)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def __contains__(self, tx_hash: object) -> bool:
        return tx_hash in self._txs

    def hashes(self) -> list[bytes]:
        """The pending transactions' hashes in pool (arrival) order."""
        return list(self._txs)

    def get(self, tx_hash: bytes) -> Transaction | None:
        entry = self._txs.get(tx_hash)
        return None if entry is None else entry.tx

    @property
    def pending_state(self) -> Overlay:
        return self._pending

    def add(self, tx: Transaction, size: int) -> bytes:
        """Admit ``tx`` or raise a typed error saying why; a refusal changes nothing."""
        tx_hash = tx.hash()
        if tx_hash in self._txs:
            raise DuplicateTxError(f"transaction {tx_hash.hex()} is already pending")
        if len(self._txs) >= self.max_txs or self._bytes + size > self.max_bytes:
            raise MempoolFullError(
                f"mempool is full ({len(self._txs)} txs, {self._bytes} bytes); retry later"
            )
        reads = _ReadRecorder(self._pending)
        trial = self._app.check_tx(tx, reads, self._context())
        _merge(trial.writes, self._pending)
        self._txs[tx_hash] = _pending(tx, tx_hash, size, reads, trial)
        self._bytes += size
        return tx_hash

    def reap(self, max_txs: int, max_bytes: int) -> list[Transaction]:
        """Transactions for the next block, in arrival order (which keeps nonces in order)."""
        out: list[Transaction] = []
        total = 0
        for entry in self._txs.values():
            if len(out) >= max_txs or total + entry.size > max_bytes:
                break
            out.append(entry.tx)
            total += entry.size
        return out

    def update_after_commit(
        self,
        committed: list[Transaction],
        *,
        recheck: bool = False,
        written: Collection[bytes] | None = None,
    ) -> list[tuple[bytes, str]]:
        """Drop committed transactions and recheck the rest; return (hash, reason) of drops.

        When the block is exactly the oldest pending transactions in pool order (the usual case:
        the proposer reaps the pool in order and gossip keeps that order), the pending overlay is
        still right: its base is the committed state, which now holds those transactions'
        writes, and the rest were applied after them.  Only otherwise, or when the caller says
        the block did something the pool could not foresee (``recheck``: orders expired at
        the block's time, or recorded as rejected because their gate closed before the block),
        is the pool re-applied.  ``written`` (the keys the block wrote, when the caller knows
        them) lets that recheck re-apply only what the block can have changed.
        """
        is_prefix = len(committed) <= len(self._txs) and all(
            tx.hash() == pending_hash
            for tx, pending_hash in zip(committed, self._txs, strict=False)
        )
        changed = None if written is None or recheck else set(written)
        for tx in committed:
            entry = self._txs.pop(tx.hash(), None)
            if entry is not None:
                self._bytes -= entry.size
                if changed is not None:
                    changed.update(entry.writes)
        if is_prefix and not recheck:
            if not self._txs:
                self._pending = Overlay(self._state)
            return []
        return self._reapply(changed)

    def evict(self, tx_hashes: list[bytes]) -> list[tuple[bytes, str]]:
        """Drop transactions a proposal had to leave out, and recheck the rest (whose nonces
        or balances may have depended on them); return (hash, reason) of further drops."""
        for tx_hash in tx_hashes:
            entry = self._txs.pop(tx_hash, None)
            if entry is not None:
                self._bytes -= entry.size
        return self._reapply()

    def _reapply(self, changed: set[bytes] | None = None) -> list[tuple[bytes, str]]:
        """Rebuild the pending state on the committed one, dropping what no longer applies.

        ``changed`` holds every key whose value may differ from what the pool's transactions
        saw (None: anything may have); it grows with the writes of each transaction that is
        dropped or applied again, so a later one that read those is applied again too.
        """
        self._pending = Overlay(self._state)
        dropped: list[tuple[bytes, str]] = []
        ctx = self._context()
        for tx_hash, entry in list(self._txs.items()):
            if changed is not None and entry.unaffected_by(changed):
                _merge(entry.writes, self._pending)
                continue
            reads = _ReadRecorder(self._pending)
            trial = Overlay(reads)
            try:
                self._app.apply_tx(entry.tx, trial, ctx)
            except ApplicationError as exc:
                del self._txs[tx_hash]
                self._bytes -= entry.size
                dropped.append((tx_hash, exc.code))
                if changed is not None:
                    changed.update(entry.writes)
                continue
            if changed is not None:
                changed.update(entry.writes)
                changed.update(trial.writes)
            _merge(trial.writes, self._pending)
            self._txs[tx_hash] = _pending(entry.tx, tx_hash, entry.size, reads, trial)
        return dropped
