"""The markets' genesis options, and how the mempool and the proposer handle block time.

Why: gate closure and expiry make a transaction's fate depend on the block's timestamp, which
the mempool cannot know when it admits the transaction.  A proposer that put a transaction in a
block that then failed would halt consensus; a mempool that kept a stale picture of escrow
would admit what blocks refuse.  These tests pin the answers: late orders are recorded as
rejected, a proposal leaves out (and the pool forgets) what no longer applies, and a block that
expired orders makes the pool recheck its pending state.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gridchain.consensus.engine import RequestProposal
from gridchain.genesis.schema import GenesisError
from gridchain.market.accounts import get_account
from gridchain.market.orders import OrderStatus, get_order
from gridchain.node.config import load_config
from gridchain.node.driver import CommitBatch
from gridchain.node.mempool import Mempool
from gridchain.node.runtime import Node
from gridchain.protocol.block import Block, CommittedBlock
from gridchain.protocol.tx import PlaceOrder, Side, Transfer, sign_tx
from tests.helpers import addr, certify, small_bundle
from tests.procs import Chain, make_chain
from tests.unit.market.conftest import EARLY_MS, GATE_MS, make_exchange

# --- genesis options -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"matching_rule": "pro_rata"}, "params.matching_rule"),
        ({"iceberg_execution": "sometimes"}, "params.iceberg_execution"),
        ({"adbev_price_weight": 0}, "params.adbev_price_weight"),
        ({"adbev_time_weight": 1001}, "params.adbev_time_weight"),
        ({"iceberg_waiting_limit_ms": -1}, "params.iceberg_waiting_limit_ms"),
        ({"day_ahead_gate_closure_ms": 1_000}, "day_ahead_gate_closure_ms must be at least"),
        ({"order_horizon_ms": 3_600_000}, "order_horizon_ms must be longer"),
    ],
)
def test_bad_market_options_stop_the_genesis_naming_the_field(
    params: dict[str, Any], field: str
) -> None:
    with pytest.raises(GenesisError, match=field):
        small_bundle(**params)


def test_market_defaults_follow_the_source() -> None:
    params = small_bundle().genesis.params
    assert params.matching_rule == "price_time"
    assert (params.adbev_price_weight, params.adbev_time_weight) == (10, 1)  # a = 10b
    assert params.iceberg_execution == "standard"
    assert params.iceberg_waiting_limit_ms == 0
    assert params.gate_closure_lead_ms(True) == params.gate_closure_lead_ms(False) == 3_600_000


# --- the mempool -----------------------------------------------------------------------------


def test_a_block_that_expired_orders_makes_the_pool_recheck() -> None:
    """The pool's pending state was built before gate closure; after a block that expired a
    buy order, a recheck sees the escrow it released."""
    ex = make_exchange()
    a, b = ex.peers[0], ex.peers[1]
    bid = ex.place(b, Side.BUY, 100_000, 5000)  # locks 500_000 of b's 1_000_000
    ex.block([bid])
    now = [GATE_MS - 1]
    pool = Mempool(ex.app, ex.state, lambda: ex.ctx(now[0]), max_txs=10, max_bytes=1 << 20)
    first = ex.sign(b, Transfer(addr(a), 400_000))
    pool.add(first, len(first.encode()))
    assert get_account(pool.pending_state, addr(b)).balance_mc == 600_000

    now[0] = GATE_MS
    ex.block([first], GATE_MS)  # expires the bid: 500_000 released
    assert get_order(ex.state, bid.hash()) is not None
    assert ex.order(bid).status == OrderStatus.EXPIRED
    assert pool.update_after_commit([first], recheck=True) == []
    assert get_account(pool.pending_state, addr(b)).locked_mc == 0
    second = ex.sign(b, Transfer(addr(a), 600_000))  # all of it: possible only after expiry
    pool.add(second, len(second.encode()))


def test_evict_drops_a_transaction_and_what_depended_on_it() -> None:
    ex = make_exchange()
    a, b = ex.peers[0], ex.peers[1]
    pool = Mempool(ex.app, ex.state, lambda: ex.ctx(EARLY_MS), max_txs=10, max_bytes=1 << 20)
    txs = [ex.sign(b, Transfer(addr(a), 10)) for _ in range(3)]
    other = ex.sign(a, Transfer(addr(b), 5))
    for tx in [*txs, other]:
        pool.add(tx, len(tx.encode()))
    dropped = pool.evict([txs[1].hash()])
    assert dropped == [(txs[2].hash(), "nonce_gap")]
    assert pool.reap(10, 1 << 20) == [txs[0], other]


# --- the proposer ----------------------------------------------------------------------------


@pytest.fixture
def proposer(tmp_path: Path) -> Iterator[tuple[Node, Chain, list[int]]]:
    """A solo validator (not started: the test drives it) on a clock the test sets."""
    chain = make_chain(tmp_path / "chain", slot_length_ms=60_000, gate_closure_ms=60_000)
    clock = [chain.bundle.genesis.genesis_time_ms + 1000]
    node = Node(load_config(chain.config_path()), clock=lambda: clock[0])
    try:
        yield node, chain, clock
    finally:
        node.store.close()


def _propose_and_commit(node: Node, chain: Chain) -> Block:
    head = node.head
    block = node.driver.build_proposal(
        RequestProposal(head.height + 1, 0, head.block_hash, head.timestamp_ms + 1),
        node.clock(),
    )
    assert block is not None
    certificate = certify(block, [chain.bundle.validators[0].key], chain.chain_id)
    effects, committed = node.driver.on_fetched([CommittedBlock(block, certificate)], node.clock())
    assert committed
    # the store writes the batch (the node is not started: no timers to arm)
    node._perform([e for e in effects if isinstance(e, CommitBatch)])
    assert node.store.head_height() == block.height
    return block


def test_a_proposal_leaves_out_what_its_block_time_makes_fail_and_the_pool_forgets_it(
    proposer: tuple[Node, Chain, list[int]],
) -> None:
    """An ask past its own expiry still matched in the pool's simulation (no block had run the
    expiry yet), so the buyer could transfer what the match left spendable.  The block at that
    time expires the ask first, the buy rests with its whole escrow, and the transfer no longer
    fits: the proposer leaves it out rather than propose a block that fails."""
    node, chain, clock = proposer
    a, b = chain.peer(0), chain.peer(1)
    cid = chain.chain_id
    slot = (clock[0] + 600_000) // 60_000
    ask = sign_tx(a, cid, 0, PlaceOrder(1, slot, 1, 1, 100_000, 1000, 0, clock[0] + 5_000))
    node.submit(ask, ask.encode())
    _propose_and_commit(node, chain)

    clock[0] += 6_000  # past the ask's expiry; no block has run since
    bid = sign_tx(b, cid, 0, PlaceOrder(1, slot, 0, 3, 150_000, 1000, 0, 0))
    node.submit(bid, bid.encode())
    pending = get_account(node.mempool.pending_state, chain.address(1))
    assert pending.locked_mc == 100_000  # the pool matched it against the stale ask
    drain = sign_tx(b, cid, 1, Transfer(chain.address(0), 900_000))
    node.submit(drain, drain.encode())

    block = _propose_and_commit(node, chain)
    assert block.txs == (bid,)
    assert len(node.mempool) == 0  # the left-out transfer is gone, not retried forever
    record = get_order(node.state, bid.hash())
    assert record is not None
    assert record.status == OrderStatus.OPEN
    assert get_account(node.state, chain.address(1)).locked_mc == 150_000
    ask_record = get_order(node.state, ask.hash())
    assert ask_record is not None
    assert ask_record.status == OrderStatus.EXPIRED
