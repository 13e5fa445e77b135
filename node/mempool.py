"""A bounded pool of checked transactions waiting for a block.

Every admitted transaction has been applied, in arrival order, to a *pending state*: an overlay
on the committed state.  A new transaction is checked against that pending state, so a sender
can queue several transfers whose nonces follow each other and cannot overspend across them,
and a block built from the pool in arrival order always executes.  After each commit the pool
drops what was included and re-applies the rest on the new state (CometBFT calls this
"recheck"), discarding what no longer applies, unless the pending state is provably still
exact: the block was the oldest pending transactions, or every pending transaction commutes
(market/commuting.py) and the block held only pending ones (ADR 0040).

The pool is bounded by count and bytes and says why it refuses a transaction with a typed error.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, replace

from gridchain.market.app import Application, BlockContext
from gridchain.market.commuting import commutes
from gridchain.market.errors import ApplicationError
from gridchain.market.state import MerkleState, Overlay
from gridchain.market.tx_effects import RecordingOverlay, TxEffect, credit_of
from gridchain.node.mempool_errors import DuplicateTxError, MempoolError, MempoolFullError
from gridchain.protocol.encoding import reserve_decoded_once
from gridchain.protocol.tx import Transaction

__all__ = ["DuplicateTxError", "Mempool", "MempoolError", "MempoolFullError", "PendingTx"]


@dataclass(frozen=True, slots=True)
class PendingTx:
    tx: Transaction
    tx_hash: bytes
    size: int
    commutes: bool
    #: what it read and wrote when last applied here (commuting transactions only): a block
    #: built or executed here takes the writes while those values hold (market/tx_effects.py)
    effect: TxEffect | None = None


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
        #: pending transactions that do not commute (market/commuting.py)
        self._ordered = 0

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
        commuting = commutes(tx)
        overlay = RecordingOverlay if commuting else Overlay
        trial = self._app.check_tx(tx, self._pending, self._context(), overlay)
        entry = PendingTx(tx, tx_hash, size, commuting, _effect(trial, tx))  # before the merge
        trial.merge_into_parent()
        self._txs[tx_hash] = entry
        self._bytes += size
        self._ordered += not entry.commutes
        reserve_decoded_once(len(self._txs), self._bytes)
        return tx_hash

    def effect_of(self, tx: Transaction) -> TxEffect | None:
        """The remembered effect of a pending transaction (None: apply it)."""
        entry = self._txs.get(tx.hash())
        return None if entry is None else entry.effect

    def reap(
        self, max_txs: int, max_bytes: int, exclude: Collection[bytes] = ()
    ) -> list[Transaction]:
        """Transactions for the next block, in arrival order (which keeps nonces in order).

        ``exclude``: hashes already in the pending blocks the new one builds on (PoB); they are
        skipped without counting, or a block on a pending parent would get the parent's
        transactions back and carry nothing new (ADR 0045)."""
        out: list[Transaction] = []
        total = 0
        for tx_hash, entry in self._txs.items():
            if exclude and tx_hash in exclude:
                continue
            if len(out) >= max_txs or total + entry.size > max_bytes:
                break
            out.append(entry.tx)
            total += entry.size
        return out

    def update_after_commit(
        self, committed: list[Transaction], *, recheck: bool = False
    ) -> list[tuple[bytes, str]]:
        """Drop committed transactions and recheck the rest; return (hash, reason) of drops.

        The pending overlay's base is the committed state, which now holds the block's writes.
        The overlay is still exact, and nothing is re-applied, when the block is exactly the
        oldest pending transactions in pool order (the proposer's own block), or when every
        committed transaction was pending and every pending one commutes (market/commuting.py:
        a follower's pool of transfers in another order than the block).  Otherwise, or when
        the caller says the block did something the pool could not foresee (``recheck``:
        orders expired at the block's time or recorded as rejected, settlement, pruning or a
        schedule before the transactions), the pool is re-applied.
        """
        is_prefix = len(committed) <= len(self._txs) and all(
            tx.hash() == pending_hash
            for tx, pending_hash in zip(committed, self._txs, strict=False)
        )
        commuting = self._ordered == 0 and all(tx.hash() in self._txs for tx in committed)
        for tx in committed:
            self._drop(tx.hash())
        if (is_prefix or commuting) and not recheck:
            if not self._txs:
                self._pending = Overlay(self._state)
            reserve_decoded_once(len(self._txs), self._bytes)
            return []
        return self._reapply()

    def evict(self, tx_hashes: list[bytes]) -> list[tuple[bytes, str]]:
        """Drop transactions a proposal had to leave out, and recheck the rest (whose nonces
        or balances may have depended on them); return (hash, reason) of further drops."""
        for tx_hash in tx_hashes:
            self._drop(tx_hash)
        return self._reapply()

    def _drop(self, tx_hash: bytes) -> PendingTx | None:
        entry = self._txs.pop(tx_hash, None)
        if entry is not None:
            self._bytes -= entry.size
            self._ordered -= not entry.commutes
        return entry

    def _reapply(self) -> list[tuple[bytes, str]]:
        """Apply the pool again on the committed state (ends every path that drops)."""
        self._pending = Overlay(self._state)
        dropped: list[tuple[bytes, str]] = []
        ctx = self._context()
        for tx_hash, entry in list(self._txs.items()):
            trial = RecordingOverlay(self._pending) if entry.commutes else Overlay(self._pending)
            try:
                self._app.apply_tx(entry.tx, trial, ctx)
            except ApplicationError as exc:
                self._drop(tx_hash)
                dropped.append((tx_hash, exc.code))
                continue
            if entry.commutes:
                self._txs[tx_hash] = replace(entry, effect=_effect(trial, entry.tx))
            trial.merge_into_parent()
        reserve_decoded_once(len(self._txs), self._bytes)
        return dropped


def _effect(trial: Overlay, tx: Transaction) -> TxEffect | None:
    return trial.effect(credit_of(tx)) if isinstance(trial, RecordingOverlay) else None
