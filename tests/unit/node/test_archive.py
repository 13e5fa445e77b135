"""Pruning keeps every promise: what the API showed before a slot was pruned it shows after.

Why (issue 17): a settled slot's orders, contracts, receipts and consumed readings leave the
live state (market/pruning.py) so the state, and each block's cost, stops growing with the
chain's age.  A participant's receipt, an order's history and a meter's readings are what the
chain promised, though: they move to the node's archive index (``A:`` keys), and the API reads
it behind the live state.  This test drives a real node (LevelDB store, driver, query layer)
through a trade, its readings, its settlement and then its pruning, and asks every route that
serves those records the same questions before and after, and again after a restart (the tree
then comes from the ledger, not from a rebuild).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gridchain.consensus.engine import RequestProposal
from gridchain.genesis.builder import GenesisBundle
from gridchain.market.cd_requests import CD_CLOSED_PREFIX, CDStatus, get_request
from gridchain.market.cd_settlement import CD_RECEIPT_PREFIX, cd_receipts
from gridchain.market.meters import READING_PREFIX, StoredReading
from gridchain.market.orders import get_order
from gridchain.market.pruning import RETAIN_MS
from gridchain.market.settlement import RECEIPT_PREFIX
from gridchain.node.config import load_config
from gridchain.node.driver import CommitBatch
from gridchain.node.query import NodeQuery
from gridchain.node.runtime import Node
from gridchain.protocol.block import CommittedBlock
from gridchain.protocol.crypto import SigningKey
from gridchain.protocol.encoding import decode
from gridchain.protocol.tx import (
    CDKind,
    CDRequest,
    Device,
    MeterReadings,
    PlaceOrder,
    Side,
    Transaction,
    sign_tx,
)
from tests.helpers import addr, certify
from tests.procs import Chain, make_chain
from tests.unit.market.metering import MeterChain, meter_entry

SLOT_MS = 60_000
GRACE_MS = 1_000
PRICE = 100_000
BRIDGE = SigningKey(b"\x07" * 32)


def _meters(bundle: GenesisBundle) -> dict[str, Any]:
    a, b = bundle.participants[0], bundle.participants[1]
    return {
        "meters": [
            meter_entry("pv-a", a.address, "PV", BRIDGE),
            meter_entry("load-b", b.address, "Loadmeter", BRIDGE),
        ]
    }


def _commit(node: Node, chain: Chain, clock: list[int], txs: list[Transaction], at_ms: int) -> None:
    clock[0] = at_ms  # the mempool admits at the block's time
    for tx in txs:
        node.mempool.add(tx, len(tx.encode()))
    head = node.head
    block = node.driver.build_proposal(
        RequestProposal(head.height + 1, 0, head.block_hash, at_ms, allow_empty=True), at_ms
    )
    assert block is not None
    assert len(block.txs) == len(txs)
    certificate = certify(block, [chain.bundle.validators[0].key], chain.chain_id)
    effects, committed = node.driver.on_fetched([CommittedBlock(block, certificate)], at_ms)
    assert committed
    node._perform([e for e in effects if isinstance(e, CommitBatch)])


def _answers(node: Node, orders: list[bytes], parties: list[bytes]) -> dict[str, Any]:
    """Every route's answer about the records pruning moves (as the API's JSON)."""
    q = NodeQuery(node)
    out: dict[str, Any] = {}
    for order_id in orders:
        found = q.order(order_id)
        assert found is not None
        out[f"order {order_id.hex()}"] = found.model_dump(mode="json")
    for party in [*parties, None]:
        name = "all" if party is None else party.hex()
        out[f"trades {name}"] = q.trades(party, None, None, 100).model_dump(mode="json")
        out[f"receipts {name}"] = q.receipts(party, None, 100).model_dump(mode="json")
    for party in parties:
        out[f"orders {party.hex()}"] = q.orders(party, None, None, 100).model_dump(mode="json")
    for meter_id in ("pv-a", "load-b"):
        out[f"readings {meter_id}"] = q.readings(meter_id, 0, 100).model_dump(mode="json")
    out["pool slots"] = q.pool_slots(0, 100).model_dump(mode="json")
    for party in [*parties, None]:
        name = "all" if party is None else party.hex()
        out[f"pool receipts {name}"] = q.pool_receipts(party, None, 100).model_dump(mode="json")
    return out


def test_a_pruned_slot_answers_the_same_through_the_api(tmp_path: Path) -> None:
    chain = make_chain(
        tmp_path / "chain",
        slot_length_ms=SLOT_MS,
        gate_closure_ms=SLOT_MS,
        settlement_grace_ms=GRACE_MS,
        genesis_changes=_meters,
    )
    genesis = chain.bundle.genesis
    a, b = chain.bundle.participants[0], chain.bundle.participants[1]
    now = genesis.genesis_time_ms + 1000
    slot = now // SLOT_MS + 3
    start, end = slot * SLOT_MS, (slot + 1) * SLOT_MS
    clock = [now]
    node = Node(load_config(chain.config_path()), clock=lambda: clock[0])
    try:
        sell = sign_tx(
            a.key,
            genesis.chain_id,
            0,
            PlaceOrder(1, slot, int(Side.SELL), int(Device.PV), PRICE, 1000, 0, 0),
        )
        buy = sign_tx(
            b.key,
            genesis.chain_id,
            0,
            PlaceOrder(1, slot, int(Side.BUY), int(Device.LOAD), PRICE, 1000, 0, 0),
        )
        _commit(node, chain, clock, [sell, buy], now)
        pv = MeterChain("pv-a", BRIDGE, genesis.chain_id)
        load = MeterChain("load-b", BRIDGE, genesis.chain_id)
        readings = [
            pv.reading(start - SLOT_MS, start, 0, 0),
            load.reading(start - SLOT_MS, start, 0, 0),
            pv.reading(start, end, 0, 1000),
            load.reading(start, end, 1000, 0),
            pv.reading(end, end + SLOT_MS, 0, 1500),
            load.reading(end, end + SLOT_MS, 1500, 0),
        ]
        _commit(
            node,
            chain,
            clock,
            [sign_tx(BRIDGE, genesis.chain_id, 0, MeterReadings(tuple(readings)))],
            end + SLOT_MS,
        )
        _commit(node, chain, clock, [], end + SLOT_MS + GRACE_MS)  # settles the slot
        orders, parties = [sell.hash(), buy.hash()], [addr(a), addr(b)]
        before = _answers(node, orders, parties)
        assert before[f"receipts {addr(a).hex()}"]["receipts"]  # settled: there is a receipt
        live_before = len(node.state)

        # Long after: the slot and the consumed readings leave the live state.
        _commit(node, chain, clock, [], end + 3 * SLOT_MS + GRACE_MS + RETAIN_MS)
        assert get_order(node.state, sell.hash()) is None
        assert not list(node.state.scan(RECEIPT_PREFIX))
        # Each meter keeps its last reading (the next settlement's start), no older one.
        kept = [decode(raw, StoredReading) for _, raw in node.state.scan(READING_PREFIX)]
        assert sorted((r.record.meter_id, r.record.sequence) for r in kept) == [
            ("load-b", 2),
            ("pv-a", 2),
        ]
        assert len(node.state) < live_before
        assert _answers(node, orders, parties) == before

        root = node.state.root()
        node.store.close()
        node = Node(load_config(chain.config_path()), clock=lambda: clock[0])
        assert node.state.root() == root
        assert _answers(node, orders, parties) == before
    finally:
        node.store.close()


# --- C&D requests and receipts ---------------------------------------------------------------

CD_INTERVAL_MS = 60_000
CD_GRACE_MS = 1_000


def _ev_meter(bundle: GenesisBundle) -> dict[str, Any]:
    return {"meters": [meter_entry("ev-a", bundle.participants[0].address, "EV", BRIDGE)]}


def _cd_answers(node: Node, request_id: bytes, owner: bytes) -> dict[str, Any]:
    """Every route's answer about a C&D request, its receipts and its decisions."""
    q = NodeQuery(node)
    found = q.cd_request(request_id)
    receipts = q.cd_receipts(request_id)
    assert found is not None
    assert receipts is not None
    schedule = q.schedule(None, 100)
    assert schedule is not None
    decisions = schedule.model_dump(mode="json")
    del decisions["current_interval"]  # the clock's, not the chain's
    return {
        "request": found.model_dump(mode="json"),
        "receipts": receipts.model_dump(mode="json"),
        "of owner": q.cd_requests(owner, None, 100).model_dump(mode="json"),
        "all": q.cd_requests(None, None, 100).model_dump(mode="json"),
        "schedule": decisions,
    }


def test_a_settled_cd_request_answers_the_same_after_pruning(tmp_path: Path) -> None:
    """Why (issue 14 leftover): a closed C&D request (``cdr:``) and its receipts (``cdrc:``)
    stayed live for ever, so the state grew with every charge; they now leave for the archive
    an hour after their last interval settled, and the API answers as before."""
    chain = make_chain(
        tmp_path / "chain",
        schedule_interval_ms=CD_INTERVAL_MS,
        schedule_interval_minutes=1,
        settlement_grace_ms=CD_GRACE_MS,
        genesis_changes=_ev_meter,
    )
    genesis = chain.bundle.genesis
    owner = chain.bundle.participants[0]
    g = genesis.genesis_time_ms
    clock = [g + 1000]
    node = Node(load_config(chain.config_path()), clock=lambda: clock[0])
    try:
        # Connected in intervals 2 and 3: 60 Wh at up to 3 kW over 1-minute intervals.
        request = sign_tx(
            owner.key,
            genesis.chain_id,
            0,
            CDRequest(
                int(CDKind.CHARGE),
                int(Device.EV),
                g + 2 * CD_INTERVAL_MS,
                g + 4 * CD_INTERVAL_MS,
                60,
                3_600,
                10**9,
                "ev-a",
            ),
        )
        _commit(node, chain, clock, [request], g + 1000)
        ev = MeterChain("ev-a", BRIDGE, genesis.chain_id)
        for j, readings in (
            (1, []),
            (2, [ev.reading(g + CD_INTERVAL_MS, g + 2 * CD_INTERVAL_MS, 0, 0)]),
            (3, [ev.reading(g + 2 * CD_INTERVAL_MS, g + 3 * CD_INTERVAL_MS, 30, 0)]),
            (4, [ev.reading(g + 3 * CD_INTERVAL_MS, g + 4 * CD_INTERVAL_MS, 60, 0)]),
        ):
            # The first block of interval j decides j + 1 and carries the meter's last reading.
            body = MeterReadings(tuple(readings))
            txs = [sign_tx(BRIDGE, genesis.chain_id, j - 2, body)] if readings else []
            _commit(node, chain, clock, txs, g + j * CD_INTERVAL_MS + 10)
        record = get_request(node.state, request.hash())
        assert record is not None
        assert record.status != int(CDStatus.OPEN)
        _commit(node, chain, clock, [], g + 4 * CD_INTERVAL_MS + CD_GRACE_MS + 10)  # settles
        assert cd_receipts(node.state, request.hash())  # settled: receipts in the live state
        before = _cd_answers(node, request.hash(), addr(owner))
        assert [r["metered_wh"] for r in before["receipts"]["receipts"]] == [30, 30]

        # An hour after its last interval settled, the request and its receipts leave.
        later = g + 4 * CD_INTERVAL_MS + CD_GRACE_MS + RETAIN_MS
        _commit(node, chain, clock, [], later)
        assert get_request(node.state, request.hash()) is None
        assert not list(node.state.scan(CD_RECEIPT_PREFIX))
        assert not list(node.state.scan(CD_CLOSED_PREFIX))
        assert _cd_answers(node, request.hash(), addr(owner)) == before

        node.store.close()
        node = Node(load_config(chain.config_path()), clock=lambda: clock[0])
        assert _cd_answers(node, request.hash(), addr(owner)) == before
    finally:
        node.store.close()
