"""A transaction's effect remembered with what it read, reused where those values still hold.

Why: a proposer applies each transaction when its pool admits it and again when it builds the
block, in the same order on (usually) the same values.  Applying a transaction is a
deterministic function of the values it reads (and, for some kinds, of the block's context),
so if every key it read still has the value it had, it writes the same values: the block can
take the remembered writes instead of applying it again (Block-STM calls this validation).
Only transactions that read no context are remembered: those that commute
(market/commuting.py), plain transfers.  A value that differs, or a scan (a range read this
record cannot check), means applying it again, which is always correct.

A transfer's credit to its recipient is remembered as a credit, not as the value it wrote: a
follower executes the block in the proposer's order, not its pool's, and when several senders
pay one account (the common case: a shop, the pool) the recipient's balance read at admission
never holds in block order.  What a transfer writes to its recipient is "the balance it finds
plus the amount" (market/app.py ``_transfer``), whatever that balance is, so the credit is
checked against nothing and applied to the value the block has then; every other read (the
sender's account, both registrations) must still hold.  With this a follower applies each
transfer once, at admission (ADR 0046).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from gridchain.market.accounts import Account, account_key
from gridchain.market.state import Overlay, StateReader
from gridchain.protocol.address import address_of
from gridchain.protocol.encoding import decode, encode_remembered
from gridchain.protocol.tx import Transaction, Transfer


@dataclass(frozen=True, slots=True)
class Credit:
    """A transfer's credit: ``amount_mc`` added to the balance of the account at ``key``."""

    key: bytes
    amount_mc: int


def credit_of(tx: Transaction) -> Credit | None:
    """The recipient credit of a plain transfer to another account (None otherwise: a
    self-transfer's recipient read is its own debit, which must hold like any read)."""
    body = tx.body
    if type(body) is not Transfer or body.to == address_of(tx.sender):
        return None
    return Credit(account_key(body.to), body.amount_mc)


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

    def effect(self, credit: Credit | None = None) -> TxEffect | None:
        """What was read and written, or None if it cannot be checked later (a scan, an
        archived entry); ask before merging the overlay into its parent (which empties it).
        ``credit`` (:func:`credit_of` the transaction applied) is kept as a credit."""
        if self.scanned or self.archived:
            return None
        reads, writes = dict(self.reads), dict(self.writes)
        if credit is not None:
            if credit.key not in writes:  # pragma: no cover - a transfer writes its recipient
                return None
            reads.pop(credit.key, None)
            del writes[credit.key]
        return TxEffect(reads, writes, credit)


@dataclass(frozen=True, slots=True)
class TxEffect:
    """The values a transaction read and the writes it made from them."""

    reads: dict[bytes, bytes | None]
    writes: dict[bytes, bytes | None]
    #: a transfer's credit to its recipient, applied to the balance found (neither in
    #: ``reads`` nor in ``writes``)
    credit: Credit | None = None

    def holds_on(self, view: StateReader) -> bool:
        """Whether every key read still has the value read (so the writes are the same)."""
        return all(view.get(key) == value for key, value in self.reads.items())

    def apply_to(self, view: Overlay) -> None:
        for key, value in self.writes.items():
            if value is None:
                view.delete(key)
            else:
                view.put(key, value)
        if self.credit is not None:
            raw = view.get(self.credit.key)
            found = Account() if raw is None else decode(raw, Account)
            credited = Account(
                found.balance_mc + self.credit.amount_mc, found.nonce, found.locked_mc
            )
            view.put(self.credit.key, encode_remembered(credited))
