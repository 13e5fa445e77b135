"""One bounded memory of verified meter-reading signatures per validator (ADR 0056).

A ``MeterReadings`` transaction carries up to 200 readings, each signed by its meter's bridge
(``Domain.METER_READING``), and market/meters.py ``check_reading`` checks each signature every
time the transaction is applied: at admission, at each recheck of the pending pool after a
commit, when the proposer builds a block, when a backup validates the proposal.  A 200-household
readings block holds about three readings per transaction, so these are most of the block's
signatures.  This memory makes each of them one Ed25519 check per validator.

**The key** is SHA-256 over exactly what the check's verdict depends on: the bridge key, the
signature and the record's canonical encoding (each length-prefixed but the last), in a memory
that belongs to one chain id and one domain.  A hit therefore means these exact bytes verified
on this chain; another signature over the same record (forged, or a second valid one), another
key or another record is checked afresh.  Only successes are remembered: a failure is cheap to
repeat and is refused by the check itself, at the same point, with the same error.

**A large block's unknown readings** (catch-up, a proposal whose transactions this validator
never admitted) go to the batch verifier (node/verify_pool.py) in one call when there are at
least ``batch_min`` of them (:meth:`ReadingSignatureCache.settle`).  Its verdicts are held
aside, not remembered: ``check_reading`` still runs its cheaper checks first and takes the
verdict only when it reaches the signature, remembering a success then, refusing a failure
with the serial check's own error.  So the block's verdict, its error and what the memory keeps
are those of the serial check (ADR 0040's rule); :meth:`ReadingSignatureCache.release` drops
what the block did not reach.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from typing import Final

from gridchain.protocol.crypto import Domain, verify
from gridchain.protocol.meter import SignedReading
from gridchain.protocol.tx import MeterReadings, Transaction
from gridchain.protocol.tx_signatures import BatchVerifier, SignatureJob, TxVerifier

#: Verified reading signatures remembered.  A 200-household community sends 400-600 readings
#: per 15-minute slot, each pending for seconds between admission and its block, so this holds
#: over a dozen slots of it, or forty full 200-reading transactions of a bridge flushing a
#: backlog.  0.8 MiB at the limit (tracemalloc: 0.79 MiB for 8,192 keys, 1.58 for 16,384); a
#: validator that has run a few hours has it full for good, so it is part of its resting size
#: (ADR 0054).  A signature that has left it is checked again.
READING_SIGNATURE_CACHE_LIMIT: Final = 8192


def reading_key(bridge_key: bytes, signature: bytes, payload: bytes) -> bytes:
    """SHA-256 over what a reading's verdict depends on besides the chain (which the memory
    is bound to): the key and the signature, length-prefixed, then the record's encoding."""
    digest = hashlib.sha256(bytes((len(bridge_key),)))
    digest.update(bridge_key)
    digest.update(bytes((len(signature),)))
    digest.update(signature)
    digest.update(payload)
    return digest.digest()


class ReadingSignatureCache:
    """Verifies meter-reading signatures for one chain, each signed record once."""

    __slots__ = ("_batch", "_batch_min", "_chain_id", "_known", "_limit", "_settled", "_verifier")

    def __init__(
        self,
        chain_id: bytes,
        verifier: TxVerifier = verify,
        limit: int = READING_SIGNATURE_CACHE_LIMIT,
    ) -> None:
        if limit < 1:
            raise ValueError("the reading signature cache holds at least one entry")
        self._chain_id = chain_id
        self._verifier = verifier
        self._limit = limit
        self._known: dict[bytes, None] = {}  # insertion order = age
        #: the batch verifier's verdicts for the block being applied, not yet reached
        self._settled: dict[bytes, bool] = {}
        self._batch: BatchVerifier | None = None
        self._batch_min = 0

    @property
    def chain_id(self) -> bytes:
        return self._chain_id

    @property
    def limit(self) -> int:
        return self._limit

    def __len__(self) -> int:
        return len(self._known)

    def __contains__(self, key: object) -> bool:
        return key in self._known

    def use_batch(self, batch: BatchVerifier | None, batch_min: int) -> None:
        """Check ``batch_min`` or more unknown reading signatures of a block with ``batch``."""
        if batch_min < 1:
            raise ValueError("a batch holds at least one signature")
        self._batch, self._batch_min = batch, batch_min

    def require(self, signed: SignedReading, bridge_key: bytes) -> bytes:
        """Raise SignatureError unless ``bridge_key`` signed ``signed``'s record for this
        chain (the error of :meth:`SignedReading.verify`); return the record's encoding."""
        payload = signed.record.encode()
        key = reading_key(bridge_key, signed.signature, payload)
        if key in self._known:
            return payload
        verdict = self._settled.pop(key, None)
        if verdict is None:
            signed.verify(bridge_key, self._chain_id, self._verifier, payload)
        elif not verdict:
            signed.verify(bridge_key, self._chain_id, _refuse, payload)
        self._remember(key)
        return payload

    def settle(self, txs: Sequence[Transaction]) -> None:
        """Have the batch verifier judge the unknown reading signatures of ``txs`` (signed by
        each transaction's sender, as ``check_reading`` checks them) if there are at least
        ``batch_min``; the verdicts wait for :meth:`require`.  Without a batch verifier this
        does nothing (the default: a validator checks in its own process)."""
        if self._batch is None:
            return
        keys: list[bytes] = []
        jobs: list[SignatureJob] = []
        seen: set[bytes] = set()
        for sender, signed in _readings_of(txs):
            payload = signed.record.encode()
            key = reading_key(sender, signed.signature, payload)
            if key in self._known or key in seen:
                continue
            seen.add(key)
            keys.append(key)
            jobs.append((sender, signed.signature, Domain.METER_READING, self._chain_id, payload))
        if len(jobs) < self._batch_min:
            return
        verdicts = self._batch(jobs)
        if len(verdicts) != len(jobs):
            raise RuntimeError(f"batch verifier answered {len(verdicts)} of {len(jobs)} jobs")
        self._settled = dict(zip(keys, verdicts, strict=True))

    def release(self) -> None:
        """Drop the batch verdicts the block did not reach (it was refused before them)."""
        self._settled = {}

    def _remember(self, key: bytes) -> None:
        if len(self._known) >= self._limit:
            del self._known[next(iter(self._known))]
        self._known[key] = None


def _readings_of(txs: Sequence[Transaction]) -> Iterator[tuple[bytes, SignedReading]]:
    """Each plain MeterReadings transaction's readings with its sender (a sealed body's are
    checked when it is opened, serially)."""
    for tx in txs:
        if isinstance(tx.body, MeterReadings):
            for signed in tx.body.readings:
                yield tx.sender, signed


def _refuse(
    public_key: bytes, signature: bytes, domain: Domain, chain_id: bytes, payload: bytes
) -> bool:
    """The verdict a batch verifier already gave: invalid."""
    return False
