"""The gateway's flood filters: small units, each refusing with its own typed error.

They run in the order of :mod:`gridchain.gateway.admission` (cheapest and most certain first)
and look only at a transaction's *envelope*: its size, its canonical decoding, the sender's
key, the nonce, the signature over the signed payload and the hash.  None reads the body's
fields, so a sealed transaction (whose body is ciphertext) passes the same checks as a clear
one and the gateway learns nothing from it but who sent it and when.

Every unit that depends on time takes a ``clock`` (monotonic seconds) instead of reading one,
so tests move time by hand and never sleep.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from gridchain.gateway.errors import (
    DuplicateTxError,
    NonceOutOfWindowError,
    NoncePendingError,
    RateLimitedError,
    TxTooLargeError,
    UnregisteredSenderError,
)
from gridchain.market.errors import SealedDisabledError, SealedKeySetError
from gridchain.protocol.sealed import SealContext, sealed_to
from gridchain.protocol.tx import SealedTx, Transaction, decode_tx

#: Monotonic seconds; the only way the filters learn the time.
Clock = Callable[[], float]


class SenderBook(Protocol):
    """What the gateway knows of the certified chain about senders (the follower answers)."""

    def is_registered(self, sender: bytes) -> bool:
        """Whether ``sender`` (a public key) may send transactions on this chain."""
        ...

    def next_nonce(self, sender: bytes) -> int:
        """The nonce the sender's next transaction must carry, as of the certified head."""
        ...


def check_size(raw: bytes, max_bytes: int) -> None:
    """Refuse an encoded transaction larger than ``max_bytes`` before decoding a byte of it."""
    if len(raw) > max_bytes:
        raise TxTooLargeError(f"a transaction is at most {max_bytes} bytes, got {len(raw)}")


def decode_envelope(raw: bytes) -> Transaction:
    """The transaction, strictly decoded (canonical bytes only), or the protocol's DecodeError.

    The protocol decoder checks every field's type and bound, including the body's; a sealed
    body decodes as opaque bytes, so this still reads nothing private."""
    return decode_tx(raw)


def check_sealed_envelope(tx: Transaction, seal: SealContext | None) -> None:
    """A sealed transaction names this chain's validator key set and wraps its content key
    once per validator; every validator would refuse it otherwise (docs/sealed.md).  This reads
    the envelope's structure, never the ciphertext: no private key is involved."""
    if not isinstance(tx.body, SealedTx):
        return
    if seal is None:
        raise SealedDisabledError("this chain registers no validator encryption keys")
    if not sealed_to(tx.body, seal):
        raise SealedKeySetError("sealed to other keys than this chain's validators")


def check_signature(tx: Transaction, chain_id: bytes) -> None:
    """The sender signed this payload for this chain (SignatureError otherwise)."""
    tx.verify_signature(chain_id)


def check_registered(tx: Transaction, senders: SenderBook) -> None:
    if not senders.is_registered(tx.sender):
        raise UnregisteredSenderError(
            f"sender {tx.sender.hex()[:16]}... is not a registered participant of this chain"
        )


@dataclass(frozen=True, slots=True)
class NonceWindow:
    """Accept nonces ``next .. next + width``: a stale nonce can never commit, and one far
    ahead would sit in a validator's pool until it expires, so neither is worth forwarding."""

    width: int

    def check(self, tx: Transaction, senders: SenderBook) -> None:
        expected = senders.next_nonce(tx.sender)
        if not expected <= tx.nonce <= expected + self.width:
            raise NonceOutOfWindowError(
                f"nonce {tx.nonce} is outside {expected}..{expected + self.width} "
                "(the sender's next nonce and the gateway's window)"
            )


def nonce_slot(sender: bytes, nonce: int) -> bytes:
    """The de-duplication key of a sender's nonce (longer than a hash: the two never meet)."""
    return b"n" + sender + nonce.to_bytes(8, "big")


class DedupCache:
    """What was forwarded recently, each entry kept for ``ttl_s`` (and at most ``capacity``
    entries, oldest dropped first), so a replayed copy costs one lookup.

    Two keys per forwarded transaction: its hash (the same bytes again: ``duplicate_tx``) and
    its sender's nonce (another transaction for a nonce already on its way: ``nonce_pending``).
    The second matters under a flood: a sender within its quota who sends many different
    transactions for one nonce would otherwise make the validators refuse all but one of
    them.  Both keys go when the validators refuse the transaction (:meth:`forget`), so the
    sender may try that nonce again."""

    def __init__(self, *, capacity: int, ttl_s: float, clock: Clock) -> None:
        self.capacity = capacity
        self.ttl_s = ttl_s
        self._clock = clock
        self._seen: OrderedDict[bytes, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def check(self, tx_hash: bytes, slot: bytes | None = None) -> None:
        self._expire()
        if tx_hash in self._seen:
            raise DuplicateTxError(f"transaction {tx_hash.hex()} was forwarded already")
        if slot is not None and slot in self._seen:
            raise NoncePendingError(
                "another transaction of this sender with this nonce is already on its way to "
                "the validators"
            )

    def remember(self, tx_hash: bytes, slot: bytes | None = None) -> None:
        """Record a forwarded transaction (called once it is queued, not when checked, so a
        transaction refused by a later filter may be sent again)."""
        until = self._clock() + self.ttl_s
        for key in (tx_hash, slot):
            if key is not None:
                self._seen[key] = until
                self._seen.move_to_end(key)
        while len(self._seen) > self.capacity:
            self._seen.popitem(last=False)

    def forget(self, tx_hash: bytes, slot: bytes | None = None) -> None:
        """Drop a transaction the validators refused, so a later one is judged by them again."""
        self._seen.pop(tx_hash, None)
        if slot is not None:
            self._seen.pop(slot, None)

    def _expire(self) -> None:
        now = self._clock()
        while self._seen:
            first, until = next(iter(self._seen.items()))
            if until > now:
                return
            del self._seen[first]


class TokenBuckets:
    """A token bucket per sender: ``rate`` transactions a second, bursts of ``burst``.

    Why per sender and not per IP: the quota follows the key that signs, so one household
    cannot buy a larger share by using more addresses, and a carrier-grade NAT does not put a
    village behind one quota.  At most ``max_senders`` buckets are kept; the one used least
    recently is dropped (a dropped bucket comes back full, which only forgives an idle sender).
    """

    def __init__(self, *, rate: float, burst: float, clock: Clock, max_senders: int) -> None:
        self.rate = rate
        self.burst = burst
        self.max_senders = max_senders
        self._clock = clock
        self._buckets: OrderedDict[bytes, tuple[float, float]] = OrderedDict()  # tokens, at

    def take(self, sender: bytes) -> None:
        """Spend one token of ``sender`` or raise RateLimitedError (nothing spent then)."""
        now = self._clock()
        tokens, at = self._buckets.get(sender, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        if tokens < 1.0:
            self._buckets[sender] = (tokens, now)
            raise RateLimitedError(
                f"sender {sender.hex()[:16]}... is over its quota of {self.rate:g} "
                f"transactions a second (bursts of {self.burst:g})",
                retry_after_s=(1.0 - tokens) / self.rate,
            )
        self._buckets[sender] = (tokens - 1.0, now)
        self._buckets.move_to_end(sender)
        while len(self._buckets) > self.max_senders:
            self._buckets.popitem(last=False)

    def tokens(self, sender: bytes) -> float:
        """What ``sender`` may spend now (for tests and metrics)."""
        now = self._clock()
        tokens, at = self._buckets.get(sender, (self.burst, now))
        return min(self.burst, tokens + (now - at) * self.rate)
