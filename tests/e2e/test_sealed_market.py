"""A sealed trade end to end: four PBFT validators, orders sealed by the wallet, matched and
settled identically on every validator, read back with sealed reads (docs/sealed.md).

Peer A sells and Peer B buys with ``wallet order ... --sealed`` through different validators;
the bodies travel and are stored only as ciphertext (the public transaction view on every
validator shows a SealedTx without price or quantity), the validators open them at execution,
and after the slot and its grace period the contract settles.  Every validator must then hold
the same state root, and the settlement receipt read sealed from each must be the same.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_markets import wallet
from tests.procs import (
    Chain,
    NodeProcess,
    http_get,
    make_chain,
    running_cluster,
    wait_for,
)

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("pbft_cluster")]

N = 4
SLOT_MS = 5000
GRACE_MS = 1000


@pytest.fixture
def sealed_testnet(tmp_path: Path) -> Iterator[tuple[Chain, list[NodeProcess]]]:
    chain = make_chain(
        tmp_path / "chain",
        validators=N,
        engine="pbft",
        block_interval_ms=100,
        slot_length_ms=SLOT_MS,
        gate_closure_ms=SLOT_MS,
        settlement_grace_ms=GRACE_MS,
        sealed=True,
    )
    with running_cluster(chain) as nodes:
        yield chain, nodes


def height(node: NodeProcess) -> int:
    return int(http_get(node.api_url + "/v1/status")[1]["height"])


def test_a_sealed_trade_matches_and_settles_the_same_on_four_validators(
    sealed_testnet: tuple[Chain, list[NodeProcess]],
) -> None:
    chain, nodes = sealed_testnet
    _, markets = http_get(nodes[0].api_url + "/v1/markets")
    slot = markets["first_open_slot"]["day_ahead"] + 2  # gate closure 5-10 s away
    sell = wallet(chain, nodes[0], "peer-a", "order", "sell", "--sealed", "--slot", str(slot),
                  "--price", "123.457", "--quantity", "0.75", "--device", "Battery")  # fmt: skip
    assert sell["sealed"] is True
    assert sell["outcome"]["status"] == "applied"
    assert sell["order"]["status"] == "open"
    buy = wallet(chain, nodes[1], "peer-b", "order", "buy", "--sealed", "--slot", str(slot),
                 "--price", "130", "--quantity", "0.75", "--device", "EV")  # fmt: skip
    assert (buy["order"]["status"], buy["order"]["filled_wh"]) == ("filled", 750)

    # What every validator stores and serves publicly is the envelope, never the order.
    for node in nodes:
        for tx_hash in (sell["hash"], buy["hash"]):
            _, record = http_get(f"{node.api_url}/v1/txs/{tx_hash}")
            assert record["tx"]["kind"] == "SealedTx"
            served = json.dumps(record)
            assert "price_mc_per_kwh" not in served
            assert "123457" not in served

    # Trades read sealed by the buyer through another validator.
    trades = wallet(chain, nodes[2], "peer-b", "trades", "--sealed")
    assert [(t["price_mc_per_kwh"], t["quantity_wh"]) for t in trades["trades"]] == [(123_457, 750)]

    # After the slot and its grace period, the next block settles the contract.
    settle_at = (slot + 1) * SLOT_MS + GRACE_MS
    wait_for(
        lambda: int(http_get(nodes[0].api_url + "/v1/markets")[1]["now_ms"]) > settle_at, 30, nodes
    )
    wallet(chain, nodes[3], "peer-c", "transfer", "--to", chain.bundle.participants[0].address,
           "--amount", "1")  # fmt: skip
    receipts: list[Any] = []
    for i, node in enumerate(nodes):
        who = "peer-a" if i % 2 == 0 else "peer-b"
        found = wallet(chain, node, who, "receipts", "--sealed")["receipts"]
        assert [(r["trade_id"], r["quantity_wh"], r["price_mc_per_kwh"]) for r in found] == [
            (found[0]["trade_id"], 750, 123_457)
        ]
        receipts.append(found)
    assert all(r == receipts[0] for r in receipts)

    # One ledger: the same state root at the same height on all four validators.
    top = max(height(n) for n in nodes)
    wait_for(lambda: all(height(n) >= top for n in nodes), 20, nodes)
    roots = {http_get(f"{n.api_url}/v1/blocks/{top}")[1]["header"]["state_root"] for n in nodes}
    assert len(roots) == 1, roots
    outcomes = wallet(chain, nodes[2], "peer-a", "outcomes")
    assert [(o["tx_hash"], o["status"]) for o in outcomes["outcomes"]] == [
        (sell["hash"], "applied")
    ]
