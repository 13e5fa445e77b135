"""One bounded memory of verified transaction signatures per validator.

A validator meets the same transaction several times: at admission (POST /v1/txs or a
gateway's link), in gossip, in a proposal it validates, in the certified block it commits, and
again in gossip after the commit.  The Ed25519 check is a validator's main per-transaction
cost, so every one of those paths asks this cache, and the check runs once.

The key is the transaction hash, SHA-256 of the whole signed encoding *including the
signature* (protocol/tx.py), and the cache belongs to one chain id.  A hit therefore means
these exact bytes (sender, nonce, body and signature) verified on this chain: a different
signature over the same body, valid or forged, has another hash and is checked afresh.

The memory is bounded (oldest forgotten first): forgetting only costs a second check.

A block whose transactions this validator has not seen (catch-up, a proposal that outran
gossip) may be checked by a *batch verifier* (node/verify_pool.py: worker processes running
the same protocol.crypto.verify) when at least ``batch_min`` of them are unknown; the verdict,
the error and what is remembered are those of the serial check (ADR 0040).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final

from gridchain.protocol.crypto import Domain, verify
from gridchain.protocol.tx import Transaction

#: What a batch verifier checks per signature: (public key, signature, domain, chain id,
#: payload), the arguments of protocol.crypto.verify.  Transactions are Domain.TX jobs, meter
#: readings Domain.METER_READING jobs (protocol/reading_signatures.py, ADR 0056).
SignatureJob = tuple[bytes, bytes, Domain, bytes, bytes]
#: Checks many signatures (in other processes), answering one verdict per job, in order.
BatchVerifier = Callable[[Sequence[SignatureJob]], list[bool]]

#: protocol.crypto.verify's signature (tests inject a counting wrapper around it).
TxVerifier = Callable[[bytes, bytes, Domain, bytes, bytes], bool]

#: Verified transaction hashes remembered: above the default mempool (10,000) and several
#: blocks of the throughput bench, 1.9 MiB resident at the limit (32,768 was 3.9 MiB, measured).
#: A validator that has run a day has it full for good (every admitted transaction enters it),
#: so the limit is part of its resting size (ADR 0054); a hash that has left it is checked again.
TX_SIGNATURE_CACHE_LIMIT: Final = 16384


class TxSignatureCache:
    """Verifies transaction signatures for one chain, each signed encoding once."""

    __slots__ = ("_batch", "_batch_min", "_chain_id", "_known", "_limit", "_verifier")

    def __init__(
        self, chain_id: bytes, verifier: TxVerifier = verify, limit: int = TX_SIGNATURE_CACHE_LIMIT
    ) -> None:
        if limit < 1:
            raise ValueError("the signature cache holds at least one entry")
        self._chain_id = chain_id
        self._verifier = verifier
        self._limit = limit
        self._known: dict[bytes, None] = {}  # insertion order = age
        self._batch: BatchVerifier | None = None
        self._batch_min = 0

    def use_batch(self, batch: BatchVerifier | None, batch_min: int) -> None:
        """Check ``batch_min`` or more unknown signatures of one call with ``batch``."""
        if batch_min < 1:
            raise ValueError("a batch holds at least one signature")
        self._batch, self._batch_min = batch, batch_min

    def __len__(self) -> int:
        return len(self._known)

    def __contains__(self, tx_hash: object) -> bool:
        return tx_hash in self._known

    @property
    def limit(self) -> int:
        return self._limit

    def require(self, tx: Transaction) -> None:
        """Raise SignatureError unless ``tx``'s sender signed it for this chain."""
        tx_hash = tx.hash()
        if tx_hash in self._known:
            return
        tx.verify_signature(self._chain_id, self._verifier)
        self._remember(tx_hash)

    def require_all(self, txs: Sequence[Transaction]) -> None:
        """:meth:`require` for each of ``txs`` in order (the first bad one raises), with the
        unknown ones checked by the batch verifier when there are enough of them."""
        unknown = [tx for tx in txs if tx.hash() not in self._known]
        if self._batch is None or len(unknown) < self._batch_min:
            for tx in unknown:
                self.require(tx)
            return
        jobs: list[SignatureJob] = [
            (tx.sender, tx.signature, Domain.TX, self._chain_id, tx.payload.encode())
            for tx in unknown
        ]
        verdicts = self._batch(jobs)
        if len(verdicts) != len(jobs):
            raise RuntimeError(f"batch verifier answered {len(verdicts)} of {len(jobs)} jobs")
        for tx, valid in zip(unknown, verdicts, strict=True):
            if not valid:
                # the serial check's own error, for the first bad one in block order
                tx.verify_signature(self._chain_id, _refuse)
            self._remember(tx.hash())

    def _remember(self, tx_hash: bytes) -> None:
        if len(self._known) >= self._limit:
            del self._known[next(iter(self._known))]
        self._known[tx_hash] = None


def _refuse(
    public_key: bytes, signature: bytes, domain: Domain, chain_id: bytes, payload: bytes
) -> bool:
    """The verdict a batch verifier already gave: invalid."""
    return False
