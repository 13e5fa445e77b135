"""Signatures of a large unseen block checked in worker processes give the serial verdicts.

Why (ADR 0040): the pool only moves protocol.crypto.verify to other processes; which
transactions are valid must not change with it.  One forged signature among many must refuse
the block with the serial check's error, and the signature memory must end as the serial
check leaves it (what verified before the bad one), so a later block is judged the same way.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace

import pytest

from gridchain.genesis.builder import GenesisBundle
from gridchain.node.verify_pool import VerifyPool, verify_jobs
from gridchain.protocol.block import check_block_structure
from gridchain.protocol.crypto import Domain
from gridchain.protocol.errors import SignatureError
from gridchain.protocol.tx import Transaction
from gridchain.protocol.tx_signatures import SignatureJob, TxSignatureCache
from tests.helpers import make_block, small_bundle, transfer

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

    def __call__(self, jobs: Sequence[SignatureJob]) -> list[bool]:
        self.calls.append(len(jobs))
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
