"""One verification per meter reading per validator, and never a hit for other bytes (ADR 0056).

Why: a MeterReadings transaction carries up to 200 bridge-signed readings, and the chain
applies it at admission, at each recheck of the pending pool, when the proposer builds a block,
when a backup validates it and when a certified block is executed again; each of those used to
check every reading's Ed25519 signature.  The validator's memory must make them one check per
reading, keyed so that another signature over the same record (forged or not) is checked
afresh and refused with the very error and at the very point it was refused before, and it
must be bounded.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from gridchain.genesis.builder import GenesisBundle
from gridchain.market.app import Application
from gridchain.market.errors import (
    ApplicationError,
    ReadingSequenceError,
    ReadingSignatureError,
)
from gridchain.market.meters import check_reading, get_meter
from gridchain.market.state import MerkleState
from gridchain.node.mempool import Mempool
from gridchain.protocol.block import check_block_structure
from gridchain.protocol.crypto import Domain, SigningKey, verify
from gridchain.protocol.errors import SignatureError
from gridchain.protocol.meter import SignedReading
from gridchain.protocol.reading_signatures import ReadingSignatureCache, reading_key
from gridchain.protocol.tx import MeterReadings, Transaction, sign_tx
from tests.helpers import GENESIS_TIME_MS, block_context, det_key, make_block
from tests.unit.market.metering import BRIDGE_1, BRIDGE_2, MeterChain, meter_bundle

MINUTE = 60_000
BUNDLE: GenesisBundle = meter_bundle()
CID = BUNDLE.genesis.chain_id


class CountingVerifier:
    """protocol.crypto.verify, counting the calls per domain (the real check still decides)."""

    def __init__(self) -> None:
        self.calls: dict[Domain, int] = {}

    def __call__(
        self, public_key: bytes, signature: bytes, domain: Domain, chain_id: bytes, payload: bytes
    ) -> bool:
        self.calls[domain] = self.calls.get(domain, 0) + 1
        return verify(public_key, signature, domain, chain_id, payload)

    @property
    def readings(self) -> int:
        return self.calls.get(Domain.METER_READING, 0)

    @property
    def txs(self) -> int:
        return self.calls.get(Domain.TX, 0)


def _chain(meter_id: str, key: SigningKey = BRIDGE_1) -> MeterChain:
    return MeterChain(meter_id, key, CID)


def _readings(chain: MeterChain, count: int) -> list[SignedReading]:
    """``count`` one-minute readings ending before genesis + 1 s (block 1's time)."""
    start = GENESIS_TIME_MS - count * MINUTE
    return [
        chain.reading(start + i * MINUTE, start + (i + 1) * MINUTE, 10 * i, 0) for i in range(count)
    ]


def _tx(key: SigningKey, nonce: int, readings: list[SignedReading]) -> Transaction:
    return sign_tx(key, CID, nonce, MeterReadings(tuple(readings)))


def _forged(signed: SignedReading) -> SignedReading:
    """The same record under its signature with one bit flipped."""
    return replace(signed, signature=bytes([signed.signature[0] ^ 1]) + signed.signature[1:])


def _error(exc: ApplicationError) -> tuple[str, str]:
    return exc.code, exc.message


def test_each_reading_is_verified_once_across_admission_build_validation_and_commit() -> None:
    counting = CountingVerifier()
    app = Application(BUNDLE.genesis, verifier=counting)
    state: MerkleState = app.genesis_state()
    pool = Mempool(app, state, lambda: block_context(1), max_txs=100, max_bytes=1 << 20)
    # bridge 1 reads two meters, bridge 2 one; bridge 2's batch waits for a later block
    tx1 = _tx(BRIDGE_1, 0, _readings(_chain("pv-a"), 3) + _readings(_chain("load-b"), 3))
    tx2 = _tx(BRIDGE_2, 0, _readings(_chain("net-c", BRIDGE_2), 2))

    pool.add(tx1, len(tx1.encode()))  # admission (POST /v1/txs, gossip): applied on the pool
    pool.add(tx2, len(tx2.encode()))
    assert (counting.txs, counting.readings) == (2, 8)

    ctx = block_context(1)
    built = app.build_block(state, [tx1], ctx)  # as the proposer
    assert built.txs == (tx1,)
    block = make_block(CID, 1, bytes(32), built.txs, state_root=built.execution.state_root)
    check_block_structure(block, CID, (), app.signatures)  # as a backup validating it
    validated = app.execute_block(state, list(block.txs), ctx)
    assert validated.state_root == built.execution.state_root
    committed = app.execute_block(state, list(block.txs), ctx)  # the certified block, again
    state.apply(committed.writes)
    pool.update_after_commit(list(block.txs), recheck=True)  # bridge 2's batch applied again
    assert tx2.hash() in pool

    assert (counting.txs, counting.readings) == (2, 8)
    assert len(app.readings) == 8


def test_a_forged_reading_signature_is_refused_on_every_path_after_the_valid_one_verified() -> None:
    counting = CountingVerifier()
    app = Application(BUNDLE.genesis, verifier=counting)
    state = app.genesis_state()
    good = _readings(_chain("pv-a"), 2)
    app.check_tx(_tx(BRIDGE_1, 0, good), state, block_context(1))  # remembered at admission
    assert counting.readings == 2
    forged = _forged(good[1])
    assert forged.record == good[1].record
    tx = _tx(BRIDGE_1, 0, [good[0], forged])
    meter = get_meter(state, "pv-a")
    head = check_reading(meter, good[0], BRIDGE_1.public_key, CID, block_context(1).timestamp_ms)
    with pytest.raises(ReadingSignatureError) as serial:  # the check without any memory
        check_reading(head, forged, BRIDGE_1.public_key, CID, block_context(1).timestamp_ms)
    expected = (
        "bad_reading_signature",
        "reading pv-a#1: reading pv-a#1: signature does not verify",
    )
    assert _error(serial.value) == expected
    before = counting.readings

    with pytest.raises(ReadingSignatureError) as admitted:
        app.check_tx(tx, state, block_context(1))
    built = app.build_block(state, [tx], block_context(1))
    with pytest.raises(ReadingSignatureError) as executed:
        app.execute_block(state, [tx], block_context(1))
    app.readings.use_batch(lambda jobs: [verify(*job) for job in jobs], 1)
    with pytest.raises(ReadingSignatureError) as batched:
        app.execute_block(state, [tx], block_context(1))

    assert built.txs == ()
    [(_, left_out)] = built.left_out
    assert isinstance(left_out, ReadingSignatureError)
    for exc in (admitted.value, left_out, executed.value, batched.value):
        assert _error(exc) == expected
    # checked afresh each time (the batch judged it once), never remembered
    assert counting.readings == before + 3
    forged_key = reading_key(BRIDGE_1.public_key, forged.signature, forged.record.encode())
    assert forged_key not in app.readings


def test_cheaper_checks_still_refuse_first_and_verify_nothing() -> None:
    counting = CountingVerifier()
    app = Application(BUNDLE.genesis, verifier=counting)
    state = app.genesis_state()
    chain = _chain("pv-a")
    first, second = _readings(chain, 2)
    tx = _tx(BRIDGE_1, 0, [_forged(second)])  # sequence 1 on a meter that expects 0

    with pytest.raises(ReadingSequenceError):
        app.check_tx(tx, state, block_context(1))
    assert counting.readings == 0
    app.check_tx(_tx(BRIDGE_1, 0, [first]), state, block_context(1))
    assert counting.readings == 1


def test_another_key_or_chain_never_hits_and_the_key_covers_the_record() -> None:
    counting = CountingVerifier()
    cache = ReadingSignatureCache(CID, counting)
    [signed] = _readings(_chain("pv-a"), 1)
    cache.require(signed, BRIDGE_1.public_key)
    cache.require(signed, BRIDGE_1.public_key)
    assert counting.readings == 1

    # the same record signed by another bridge: a different, valid signature, checked afresh
    [other] = _readings(_chain("pv-a", BRIDGE_2), 1)
    assert other.record == signed.record
    cache.require(other, BRIDGE_2.public_key)
    assert counting.readings == 2
    # a remembered signature presented for another key, or over another record, is checked
    with pytest.raises(SignatureError):
        cache.require(signed, det_key("stranger").public_key)
    tampered = replace(signed, record=replace(signed.record, export_wh=1))
    with pytest.raises(SignatureError):
        cache.require(tampered, BRIDGE_1.public_key)
    assert counting.readings == 4
    assert len(cache) == 2
    with pytest.raises(SignatureError):
        ReadingSignatureCache(b"\x01" * 32).require(signed, BRIDGE_1.public_key)


def test_the_memory_is_bounded_and_forgets_the_oldest_first() -> None:
    counting = CountingVerifier()
    cache = ReadingSignatureCache(CID, counting, limit=2)
    readings = _readings(_chain("pv-a"), 3)
    keys = [reading_key(BRIDGE_1.public_key, r.signature, r.record.encode()) for r in readings]
    for signed in readings:
        cache.require(signed, BRIDGE_1.public_key)
    assert len(cache) == 2 == cache.limit
    assert [k in cache for k in keys] == [False, True, True]

    cache.require(readings[2], BRIDGE_1.public_key)  # remembered: no check
    assert counting.readings == 3
    cache.require(readings[0], BRIDGE_1.public_key)  # forgotten: checked, readings[1] goes
    assert counting.readings == 4
    assert [k in cache for k in keys] == [True, False, True]


def test_a_memory_of_no_entries_or_a_batch_of_none_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        ReadingSignatureCache(CID, limit=0)
    with pytest.raises(ValueError, match="at least one"):
        ReadingSignatureCache(CID).use_batch(None, 0)


def test_a_released_verdict_is_not_remembered_and_not_used() -> None:
    counting = CountingVerifier()
    cache = ReadingSignatureCache(CID, counting)
    readings = _readings(_chain("pv-a"), 3)
    cache.use_batch(lambda jobs: [verify(*job) for job in jobs], 1)
    cache.settle([_tx(BRIDGE_1, 0, readings)])
    assert len(cache) == 0  # judged, not remembered until a check reaches it
    cache.require(readings[0], BRIDGE_1.public_key)
    assert (len(cache), counting.readings) == (1, 0)
    cache.release()
    cache.require(readings[1], BRIDGE_1.public_key)  # its verdict was dropped: checked here
    assert (len(cache), counting.readings) == (2, 1)
