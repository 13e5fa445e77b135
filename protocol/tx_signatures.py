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
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from gridchain.protocol.crypto import Domain, verify
from gridchain.protocol.tx import Transaction

#: protocol.crypto.verify's signature (tests inject a counting wrapper around it).
TxVerifier = Callable[[bytes, bytes, Domain, bytes, bytes], bool]

#: Verified transaction hashes remembered: above the default mempool and several full blocks,
#: about 4 MB at the limit.
TX_SIGNATURE_CACHE_LIMIT: Final = 32768


class TxSignatureCache:
    """Verifies transaction signatures for one chain, each signed encoding once."""

    __slots__ = ("_chain_id", "_known", "_limit", "_verifier")

    def __init__(
        self, chain_id: bytes, verifier: TxVerifier = verify, limit: int = TX_SIGNATURE_CACHE_LIMIT
    ) -> None:
        if limit < 1:
            raise ValueError("the signature cache holds at least one entry")
        self._chain_id = chain_id
        self._verifier = verifier
        self._limit = limit
        self._known: dict[bytes, None] = {}  # insertion order = age

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
        if len(self._known) >= self._limit:
            del self._known[next(iter(self._known))]
        self._known[tx_hash] = None
