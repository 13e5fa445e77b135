"""Signatures of a large unseen block checked in worker processes give the serial verdicts.

Why (ADR 0040): the pool only moves protocol.crypto.verify to other processes; which
transactions are valid must not change with it.  One forged signature among many must refuse
the block with the serial check's error, and the signature memory must end as the serial
check leaves it (what verified before the bad one), so a later block is judged the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace

import pytest

from gridchain.genesis.builder import GenesisBundle
from gridchain.market.app import Application
from gridchain.node.verify_pool import VerifyPool, verify_jobs
from gridchain.protocol.block import check_block_structure
from gridchain.protocol.crypto import Domain
from gridchain.protocol.errors import GridchainError, SignatureError
from gridchain.protocol.meter import SignedReading
from gridchain.protocol.reading_signatures import reading_key
from gridchain.protocol.tx import MeterReadings, Transaction, sign_tx
from gridchain.protocol.tx_signatures import SignatureJob, TxSignatureCache
from tests.helpers import GENESIS_TIME_MS, block_context, make_block, small_bundle, transfer
from tests.unit.market.metering import BRIDGE_1, BRIDGE_2, MeterChain, meter_bundle

BUNDLE: GenesisBundle = small_bundle(participants=3, seed="verify-pool")
CID = BUNDLE.genesis.chain_id
COUNT = 300


@pytest.fixture(scope="module")
def pool() -> Iterator[VerifyPool]:
    verify_pool = VerifyPool(2)
    yield verify_pool
    verify_pool.close()


def _txs() -> list[Transaction]:
    a, b, _ = BUNDLE.participants
    return [transfer(a, CID, n, b, 1 + n) for n in range(COUNT)]


def _forged(tx: Transaction) -> Transaction:
    return replace(tx, signature=bytes([tx.signature[0] ^ 1]) + tx.signature[1:])


class CountingBatch:
    def __init__(self, pool: VerifyPool) -> None:
        self.pool = pool
        self.calls: list[int] = []
        self.jobs: list[list[SignatureJob]] = []

    def __call__(self, jobs: Sequence[SignatureJob]) -> list[bool]:
        self.calls.append(len(jobs))
        self.jobs.append(list(jobs))
        return self.pool(jobs)


def _judge(cache: TxSignatureCache, txs: list[Transaction]) -> str | None:
    block = make_block(CID, 1, bytes(32), txs)
    try:
        check_block_structure(block, CID, (), cache)
    except SignatureError as exc:
        return f"{exc.code}: {exc.message}"
    return None


def test_one_forged_signature_among_many_refuses_the_block_as_the_serial_check_does(
    pool: VerifyPool,
) -> None:
    txs = _txs()
    txs[COUNT // 2 + 7] = _forged(txs[COUNT // 2 + 7])
    serial = TxSignatureCache(CID)
    parallel = TxSignatureCache(CID)
    batch = CountingBatch(pool)
    parallel.use_batch(batch, 64)

    verdict = _judge(parallel, txs)

    assert batch.calls == [COUNT]
    assert verdict is not None
    assert verdict == _judge(serial, txs)
    assert len(parallel) == len(serial) == COUNT // 2 + 7
    assert all(tx.hash() in parallel for tx in txs[: COUNT // 2 + 7])
    assert txs[COUNT // 2 + 7].hash() not in parallel


def test_a_valid_block_is_accepted_and_remembered_and_only_unknown_ones_go_to_the_pool(
    pool: VerifyPool,
) -> None:
    txs = _txs()
    cache = TxSignatureCache(CID)
    batch = CountingBatch(pool)
    cache.use_batch(batch, 64)
    for tx in txs[:10]:
        cache.require(tx)  # seen at admission

    assert _judge(cache, txs) is None
    assert batch.calls == [COUNT - 10]
    assert len(cache) == COUNT
    # a block of known transactions checks nothing again
    assert _judge(cache, txs) is None
    assert batch.calls == [COUNT - 10]


def test_below_the_batch_size_the_node_checks_serially(pool: VerifyPool) -> None:
    txs = _txs()[:20]
    txs[3] = _forged(txs[3])
    cache = TxSignatureCache(CID)
    batch = CountingBatch(pool)
    cache.use_batch(batch, 64)

    assert _judge(cache, txs) == _judge(TxSignatureCache(CID), txs)
    assert batch.calls == []


def test_the_pools_verdicts_equal_the_serial_verifier(pool: VerifyPool) -> None:
    txs = _txs()
    for i in range(0, COUNT, 13):
        txs[i] = _forged(txs[i])
    other_chain = bytes(32)
    jobs: list[SignatureJob] = [
        (tx.sender, tx.signature, Domain.TX, CID if i % 5 else other_chain, tx.payload.encode())
        for i, tx in enumerate(txs)
    ]

    verdicts = pool(jobs)

    assert verdicts == verify_jobs(jobs)
    assert True in verdicts
    assert False in verdicts
    assert pool([]) == []


# --- meter readings (ADR 0056) -----------------------------------------------------------------

READING_BUNDLE: GenesisBundle = meter_bundle()
READING_CID = READING_BUNDLE.genesis.chain_id
MINUTE = 60_000


def _reading_txs(count: int) -> list[Transaction]:
    """Bridge 1's batches of ``count`` readings of pv-a and load-b each, and bridge 2's of
    net-c, in transactions of 20 readings (all ending before block 1's time)."""
    txs: list[Transaction] = []
    for key, meter_ids in ((BRIDGE_1, ("pv-a", "load-b")), (BRIDGE_2, ("net-c",))):
        readings: list[SignedReading] = []
        for meter_id in meter_ids:
            chain = MeterChain(meter_id, key, READING_CID)
            start = GENESIS_TIME_MS - count * MINUTE
            readings += [
                chain.reading(start + i * MINUTE, start + (i + 1) * MINUTE, i, 0)
                for i in range(count)
            ]
        for nonce, at in enumerate(range(0, len(readings), 20)):
            body = MeterReadings(tuple(readings[at : at + 20]))
            txs.append(sign_tx(key, READING_CID, nonce, body))
    return txs


def _with_reading(
    tx: Transaction, index: int, change: Callable[[SignedReading], SignedReading]
) -> Transaction:
    """``tx`` re-signed by its sender with its ``index``-th reading changed."""
    assert isinstance(tx.body, MeterReadings)
    readings = list(tx.body.readings)
    readings[index] = change(readings[index])
    key = BRIDGE_1 if tx.sender == BRIDGE_1.public_key else BRIDGE_2
    return sign_tx(key, READING_CID, tx.nonce, MeterReadings(tuple(readings)))


def _forged_reading(signed: SignedReading) -> SignedReading:
    return replace(signed, signature=bytes([signed.signature[0] ^ 1]) + signed.signature[1:])


def _reading_keys(txs: list[Transaction]) -> list[bytes]:
    return [
        reading_key(tx.sender, r.signature, r.record.encode())
        for tx in txs
        if isinstance(tx.body, MeterReadings)
        for r in tx.body.readings
    ]


def _execute(app: Application, txs: list[Transaction]) -> str | None:
    """The block's verdict as a backup's execution gives it (None: it applies)."""
    state = app.genesis_state()
    try:
        app.execute_block(state, txs, block_context(1))
    except GridchainError as exc:
        return f"{exc.code}: {exc.message}"
    return None


def _pooled(pool: VerifyPool, batch_min: int = 16) -> tuple[Application, CountingBatch]:
    app = Application(READING_BUNDLE.genesis)
    batch = CountingBatch(pool)
    app.readings.use_batch(batch, batch_min)
    return app, batch


def test_a_large_blocks_unknown_readings_go_to_the_pool_once_and_are_remembered(
    pool: VerifyPool,
) -> None:
    txs = _reading_txs(30)  # 90 readings in 5 transactions
    app, batch = _pooled(pool)
    state = app.genesis_state()
    app.check_tx(txs[0], state, block_context(1))  # 20 seen at admission

    assert _execute(app, txs) is None
    assert batch.calls == [90 - 20]
    assert all(job[2] is Domain.METER_READING for job in batch.jobs[0])
    assert len(app.readings) == 90
    assert all(key in app.readings for key in _reading_keys(txs))
    # executed again (the certified block): nothing left to check
    assert _execute(app, txs) is None
    assert batch.calls == [90 - 20]


def test_a_forged_reading_in_a_large_block_is_refused_as_the_serial_check_does(
    pool: VerifyPool,
) -> None:
    txs = _reading_txs(30)
    txs[3] = _with_reading(txs[3], 7, _forged_reading)
    serial = Application(READING_BUNDLE.genesis)
    app, batch = _pooled(pool)

    verdict = _execute(app, txs)

    assert batch.calls == [90]
    assert verdict is not None
    assert verdict.startswith("bad_reading_signature: ")
    assert verdict == _execute(serial, txs)
    # remembered: what the serial check verified before the bad one, nothing after it
    assert len(app.readings) == len(serial.readings) == 3 * 20 + 7
    keys = _reading_keys(txs)
    assert [k in app.readings for k in keys] == [k in serial.readings for k in keys]


def test_a_cheaper_refusal_before_a_forged_reading_still_decides_the_block(
    pool: VerifyPool,
) -> None:
    txs = _reading_txs(30)
    txs[1] = _with_reading(
        txs[1], 2, lambda r: replace(r, record=replace(r.record, sequence=r.record.sequence + 5))
    )
    txs[3] = _with_reading(txs[3], 7, _forged_reading)
    serial = Application(READING_BUNDLE.genesis)
    app, batch = _pooled(pool)

    verdict = _execute(app, txs)

    assert batch.calls == [90]
    assert verdict is not None
    assert verdict.startswith("reading_sequence: ")
    assert verdict == _execute(serial, txs)
    assert len(app.readings) == len(serial.readings) == 20 + 2


def test_below_the_batch_size_readings_are_checked_serially(pool: VerifyPool) -> None:
    txs = _reading_txs(30)
    app, batch = _pooled(pool, batch_min=91)
    assert _execute(app, txs) is None
    assert batch.calls == []
    assert len(app.readings) == 90


def test_a_job_is_judged_in_its_own_domain(pool: VerifyPool) -> None:
    [tx] = _reading_txs(3)[-1:]
    assert isinstance(tx.body, MeterReadings)
    signed = tx.body.readings[0]
    reading: SignatureJob = (
        tx.sender,
        signed.signature,
        Domain.METER_READING,
        READING_CID,
        signed.record.encode(),
    )
    as_tx: SignatureJob = (tx.sender, signed.signature, Domain.TX, *reading[3:])
    tx_job: SignatureJob = (tx.sender, tx.signature, Domain.TX, READING_CID, tx.payload.encode())
    as_reading: SignatureJob = (tx.sender, tx.signature, Domain.METER_READING, *tx_job[3:])
    jobs = [reading, as_tx, tx_job, as_reading] * 20

    assert pool(jobs) == verify_jobs(jobs) == [True, False, True, False] * 20
