"""Each flood filter of the gateway alone: its typed refusal, its counter, nothing forwarded.

"Nothing forwarded" is what protects the chain: a refused transaction is never queued toward
the validators, so the fake chain behind the forwarder receives nothing and no validator's
mempool or ledger can change.  Time moves only through the injected clock: no test sleeps.
"""

from __future__ import annotations

import asyncio

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from gridchain.gateway.errors import (
    DuplicateTxError,
    NonceOutOfWindowError,
    NoncePendingError,
    NotFollowingError,
    QueueFullError,
    RateLimitedError,
    TxTooLargeError,
    UnregisteredSenderError,
)
from gridchain.gateway.fair_queue import FairQueue, Queued
from gridchain.gateway.filters import DedupCache, TokenBuckets
from gridchain.gateway.forwarder import forward_forever
from gridchain.market.errors import SealedDisabledError, SealedKeySetError
from gridchain.protocol.errors import DecodeError, GridchainError, SignatureError
from gridchain.protocol.sealed import SealContext, seal_tx
from gridchain.protocol.tx import Transfer
from tests.unit.gateway.conftest import (
    ALICE,
    BOB,
    CHAIN_ID,
    MALLORY,
    ManualClock,
    Pipeline,
    make_pipeline,
    transfer,
)


def _refused_alone(
    p: Pipeline, raw: bytes, error: type[GridchainError], filter_name: str, code: str
) -> None:
    before = p.refused(filter_name, code)
    with pytest.raises(error) as caught:
        p.admission.admit(raw)
    assert caught.value.code == code
    assert p.refused(filter_name, code) == before + 1
    assert len(p.admission.queue) == 0, "a refused transaction was queued toward the validators"
    assert p.metrics.registry.get_sample_value("gridchain_gateway_admitted_total") == 0


async def test_an_honest_transaction_is_queued_with_its_hash(pipeline: Pipeline) -> None:
    tx = transfer(ALICE, 0)
    assert pipeline.admission.admit(tx.encode()).tx_hash == tx.hash()
    assert len(pipeline.admission.queue) == 1
    assert pipeline.metrics.registry.get_sample_value("gridchain_gateway_admitted_total") == 1


async def test_size_limit_refuses_before_decoding(pipeline: Pipeline) -> None:
    raw = transfer(ALICE, 0).encode() + b"\x00" * 2000  # larger than max_tx_bytes = 1024
    _refused_alone(pipeline, raw, TxTooLargeError, "size", "tx_too_large")
    assert TxTooLargeError.http_status == 413


@pytest.mark.parametrize(
    "raw",
    [
        b"\xff\x00garbage",
        b"",
        transfer(ALICE, 0).encode()[:-1],  # truncated
        transfer(ALICE, 0).encode() + b"\x00",  # trailing byte: not canonical
    ],
    ids=["garbage", "empty", "truncated", "trailing"],
)
async def test_strict_decoding_refuses_malformed_bytes(pipeline: Pipeline, raw: bytes) -> None:
    before = sum(
        s.value
        for metric in pipeline.metrics.refused.collect()
        for s in metric.samples
        if s.labels.get("filter") == "decode" and s.name.endswith("_total")
    )
    with pytest.raises(DecodeError) as caught:
        pipeline.admission.admit(raw)
    assert pipeline.refused("decode", caught.value.code) >= 1
    after = sum(
        s.value
        for metric in pipeline.metrics.refused.collect()
        for s in metric.samples
        if s.labels.get("filter") == "decode" and s.name.endswith("_total")
    )
    assert after == before + 1
    assert len(pipeline.admission.queue) == 0


async def test_bad_signature_is_refused(pipeline: Pipeline) -> None:
    good = transfer(ALICE, 0)
    forged = type(good)(good.sender, good.nonce, good.body, bytes(64))
    _refused_alone(pipeline, forged.encode(), SignatureError, "signature", "bad_signature")
    # signed for another chain: the same refusal
    other_chain = transfer(ALICE, 0, chain_id=b"\x07" * 32)
    _refused_alone(pipeline, other_chain.encode(), SignatureError, "signature", "bad_signature")


async def test_unregistered_sender_is_refused(pipeline: Pipeline) -> None:
    raw = transfer(MALLORY, 0).encode()
    _refused_alone(pipeline, raw, UnregisteredSenderError, "sender", "unregistered_sender")
    assert UnregisteredSenderError.http_status == 403


async def test_nonce_window_refuses_stale_and_far_future_nonces(pipeline: Pipeline) -> None:
    pipeline.chain.nonces[ALICE.public_key] = 10
    for nonce in (9, 15):  # window 4: 10..14
        raw = transfer(ALICE, nonce).encode()
        _refused_alone(pipeline, raw, NonceOutOfWindowError, "nonce", "nonce_out_of_window")
    for nonce in (10, 14):
        pipeline.admission.admit(transfer(ALICE, nonce).encode())
    assert len(pipeline.admission.queue) == 2


async def test_duplicate_is_refused_until_its_entry_expires(pipeline: Pipeline) -> None:
    raw = transfer(ALICE, 0).encode()
    pipeline.admission.admit(raw)
    queued = len(pipeline.admission.queue)
    before = pipeline.refused("duplicate", "duplicate_tx")
    with pytest.raises(DuplicateTxError):
        pipeline.admission.admit(raw)
    assert pipeline.refused("duplicate", "duplicate_tx") == before + 1
    assert len(pipeline.admission.queue) == queued  # the copy was not queued
    pipeline.clock.advance(61.0)  # ttl 60 s
    pipeline.admission.admit(raw)
    assert len(pipeline.admission.queue) == queued + 1


async def test_token_bucket_refuses_a_sender_over_its_quota_and_refills_with_the_clock() -> None:
    p = make_pipeline(rate=2.0, burst=3.0, window=100)
    for nonce in range(3):  # the burst
        p.admission.admit(transfer(ALICE, nonce).encode())
    before = p.refused("quota", "rate_limited")
    with pytest.raises(RateLimitedError) as caught:
        p.admission.admit(transfer(ALICE, 3).encode())
    assert caught.value.http_status == 429
    assert caught.value.retry_after_s == pytest.approx(0.5)
    assert p.refused("quota", "rate_limited") == before + 1
    assert len(p.admission.queue) == 3
    # another sender is not affected by Alice's quota
    p.admission.admit(transfer(BOB, 0).encode())
    # half a second later Alice has one token again (rate 2/s)
    p.clock.advance(0.5)
    p.admission.admit(transfer(ALICE, 3).encode())
    assert len(p.admission.queue) == 5


async def test_a_refused_transaction_is_not_remembered_as_a_duplicate() -> None:
    p = make_pipeline(rate=1.0, burst=1.0)
    p.admission.admit(transfer(ALICE, 0).encode())
    raw = transfer(ALICE, 1).encode()
    with pytest.raises(RateLimitedError):
        p.admission.admit(raw)
    p.clock.advance(1.0)
    p.admission.admit(raw)  # its retry passes: the quota refusal left no dedup entry


async def test_full_queue_refuses_with_429_in_total_and_per_sender() -> None:
    p = make_pipeline(queue_max=3, queue_per_sender=2, burst=10, window=10)
    p.admission.admit(transfer(ALICE, 0).encode())
    p.admission.admit(transfer(ALICE, 1).encode())
    before = p.refused("queue", "queue_full")
    with pytest.raises(QueueFullError) as caught:
        p.admission.admit(transfer(ALICE, 2).encode())
    assert caught.value.http_status == 429
    p.admission.admit(transfer(BOB, 0).encode())
    with pytest.raises(QueueFullError):
        p.admission.admit(transfer(BOB, 1).encode())  # total bound of 3
    assert p.refused("queue", "queue_full") == before + 2
    assert len(p.admission.queue) == 3


async def test_nothing_is_admitted_before_the_chain_is_followed(pipeline: Pipeline) -> None:
    pipeline.admission.ready = lambda: False
    raw = transfer(ALICE, 0).encode()
    _refused_alone(pipeline, raw, NotFollowingError, "ready", "gateway_not_ready")


async def test_fair_queue_serves_senders_in_turn() -> None:
    queue = FairQueue(max_total=100, max_per_sender=100)
    for i in range(5):
        queue.put(Queued(b"flood", bytes([i]), b"f%d" % i))
    queue.put(Queued(b"alice", b"a", b"a0"))
    queue.put(Queued(b"bob", b"b", b"b0"))
    order = []
    while (item := queue.pop()) is not None:
        order.append(item.raw)
        queue.release(item.sender)
    # the honest senders wait behind one flood transaction each, not behind all five
    assert order == [b"f0", b"a0", b"b0", b"f1", b"f2", b"f3", b"f4"]
    assert len(queue) == 0


async def test_fair_queue_never_gives_out_two_of_one_sender_at_once() -> None:
    queue = FairQueue(max_total=100, max_per_sender=100)
    queue.put(Queued(b"alice", b"1", b"a0"))
    queue.put(Queued(b"alice", b"2", b"a1"))
    first = queue.pop()
    assert first is not None
    assert first.raw == b"a0"
    assert queue.pop() is None  # a1 waits until a0 is answered: nonces stay in order
    queue.release(b"alice")
    second = queue.pop()
    assert second is not None
    assert second.raw == b"a1"


async def test_a_second_transaction_for_a_nonce_on_its_way_is_refused(pipeline: Pipeline) -> None:
    pipeline.admission.admit(transfer(ALICE, 0, amount=1).encode())
    other = transfer(ALICE, 0, amount=2).encode()  # same nonce, other body, other hash
    before = pipeline.refused("duplicate", "nonce_pending")
    with pytest.raises(NoncePendingError) as caught:
        pipeline.admission.admit(other)
    assert caught.value.http_status == 409
    assert pipeline.refused("duplicate", "nonce_pending") == before + 1
    assert len(pipeline.admission.queue) == 1


def test_dedup_cache_is_bounded() -> None:
    cache = DedupCache(capacity=2, ttl_s=100, clock=ManualClock())
    for h in (b"1", b"2", b"3"):
        cache.remember(h)
    assert len(cache) == 2
    cache.check(b"1")  # the oldest was dropped: no refusal
    with pytest.raises(DuplicateTxError):
        cache.check(b"3")


def test_token_buckets_are_bounded_in_number() -> None:
    clock = ManualClock()
    buckets = TokenBuckets(rate=1.0, burst=1.0, clock=clock, max_senders=2)
    for sender in (b"a", b"b", b"c"):
        buckets.take(sender)
    assert buckets.tokens(b"a") == 1.0  # evicted: comes back full
    assert buckets.tokens(b"c") == 0.0


async def test_forwarder_hands_queued_transactions_to_the_chain(pipeline: Pipeline) -> None:
    raws = [transfer(ALICE, 0).encode(), transfer(BOB, 0).encode()]
    items = [pipeline.admission.admit(raw) for raw in raws]
    task = asyncio.create_task(
        forward_forever(
            pipeline.admission.queue, pipeline.chain, pipeline.metrics, pipeline.admission.dedup
        )
    )
    try:
        await asyncio.gather(*(item.verdict for item in items))
    finally:
        task.cancel()
    assert pipeline.chain.submitted == raws
    assert pipeline.metrics.registry.get_sample_value("gridchain_gateway_forwarded_total") == 2


async def test_a_transaction_the_validators_refuse_is_forgotten_by_the_dedup_cache(
    pipeline: Pipeline,
) -> None:
    class RefusedError(GridchainError):
        code = "mempool_full"

    async def refuse(raw: bytes) -> None:
        raise RefusedError("full")

    pipeline.chain.submit = refuse  # type: ignore[method-assign]
    raw = transfer(ALICE, 0).encode()
    item = pipeline.admission.admit(raw)
    task = asyncio.create_task(
        forward_forever(
            pipeline.admission.queue, pipeline.chain, pipeline.metrics, pipeline.admission.dedup
        )
    )
    try:
        with pytest.raises(RefusedError):
            await item.verdict
    finally:
        task.cancel()
    assert len(pipeline.admission.dedup) == 0
    assert pipeline.admission.admit(raw).tx_hash == item.tx_hash  # judged again


def _encryption_keys(n: int) -> tuple[bytes, ...]:
    return tuple(
        X25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        for _ in range(n)
    )


async def test_a_sealed_transaction_passes_on_its_envelope_alone() -> None:
    keys = _encryption_keys(4)
    p = make_pipeline(seal=SealContext(CHAIN_ID, keys))
    tx = seal_tx(ALICE, CHAIN_ID, 0, Transfer(b"\x01" * 20, 5), keys, content_key=bytes(32))
    assert p.admission.admit(tx.encode()).tx_hash == tx.hash()


async def test_a_transaction_sealed_to_other_keys_is_refused() -> None:
    """Every validator would refuse it (sealed_wrong_keys): it never leaves the gateway."""
    keys, others = _encryption_keys(4), _encryption_keys(4)
    p = make_pipeline(seal=SealContext(CHAIN_ID, keys))
    tx = seal_tx(ALICE, CHAIN_ID, 0, Transfer(b"\x01" * 20, 5), others, content_key=bytes(32))
    _refused_alone(p, tx.encode(), SealedKeySetError, "sealed", "sealed_wrong_keys")
    short = seal_tx(ALICE, CHAIN_ID, 0, Transfer(b"\x01" * 20, 5), keys[:3], content_key=bytes(32))
    _refused_alone(p, short.encode(), SealedKeySetError, "sealed", "sealed_wrong_keys")


async def test_a_sealed_transaction_on_a_chain_without_keys_is_refused(pipeline: Pipeline) -> None:
    keys = _encryption_keys(4)
    tx = seal_tx(ALICE, CHAIN_ID, 0, Transfer(b"\x01" * 20, 5), keys, content_key=bytes(32))
    _refused_alone(pipeline, tx.encode(), SealedDisabledError, "sealed", "sealed_disabled")
