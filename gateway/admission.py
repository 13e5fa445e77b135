"""The gateway's admission pipeline: every filter, in order, before anything is queued.

The order puts what is cheapest and refuses the most junk first: the size (a comparison), the
strict decoding (bounded by the size), the signature (about 50 µs, and after it every further
refusal is attributable to a real key), the registered sender and the nonce window (lookups in
the followed chain), the de-duplication cache, the sender's token bucket, and last the bounded
fair queue.  The per-IP connection cap runs before all of this, on the connection
(gridchain.node.http_guard).  A transaction refused at any step is counted under that step and
never leaves the gateway; only one that passed every step is remembered by the de-duplication
cache, so a sender may retry one refused for its quota.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gridchain.gateway.errors import NotFollowingError
from gridchain.gateway.fair_queue import FairQueue, Queued
from gridchain.gateway.filters import (
    DedupCache,
    NonceWindow,
    SenderBook,
    TokenBuckets,
    check_registered,
    check_sealed_envelope,
    check_signature,
    check_size,
    decode_envelope,
    nonce_slot,
)
from gridchain.gateway.metrics import GatewayMetrics
from gridchain.protocol.errors import GridchainError
from gridchain.protocol.sealed import SealContext

#: The filters in the order they run (their names label the refusal counter).
FILTERS = (
    "size",
    "decode",
    "sealed",
    "signature",
    "sender",
    "nonce",
    "duplicate",
    "quota",
    "queue",
)


@dataclass
class Admission:
    chain_id: bytes
    senders: SenderBook
    max_tx_bytes: int
    window: NonceWindow
    dedup: DedupCache
    buckets: TokenBuckets
    queue: FairQueue
    metrics: GatewayMetrics
    #: False until the follower is linked to the chain: no sender can be checked before.
    ready: Callable[[], bool] = lambda: True
    #: The validators' encryption keys (genesis); None when the chain seals nothing.
    seal: SealContext | None = None

    def admit(self, raw: bytes) -> Queued:
        """Queue ``raw`` toward the validators (its ``verdict`` settles once they answered),
        or raise the typed refusal of the first filter it fails (counted by filter and code)."""
        step = "ready"
        try:
            if not self.ready():
                raise NotFollowingError("the gateway has not followed the chain yet; retry")
            step = "size"
            check_size(raw, self.max_tx_bytes)
            step = "decode"
            tx = decode_envelope(raw)
            step = "sealed"
            check_sealed_envelope(tx, self.seal)
            step = "signature"
            check_signature(tx, self.chain_id)
            step = "sender"
            check_registered(tx, self.senders)
            step = "nonce"
            self.window.check(tx, self.senders)
            step = "duplicate"
            tx_hash = tx.hash()
            slot = nonce_slot(tx.sender, tx.nonce)
            self.dedup.check(tx_hash, slot)
            step = "quota"
            self.buckets.take(tx.sender)
            step = "queue"
            item = Queued(tx.sender, tx_hash, raw, slot)
            self.queue.put(item)
        except GridchainError as exc:  # the filters' own, DecodeError, SignatureError, BadKey
            self.metrics.refused.labels(filter=step, code=exc.code).inc()
            raise
        self.dedup.remember(tx_hash, slot)
        self.metrics.admitted.inc()
        self.metrics.queued.set(len(self.queue))
        return item
