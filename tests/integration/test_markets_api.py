"""The market endpoints and events of a real node process (docs/markets.md, api/models.py).

Why: wallets and dashboards read books, orders and trades only through these routes; the book
must show an iceberg's visible clip and nothing of its hidden volume, refusals must be typed
4xx answers, and a subscriber must see every trade of a block on /v1/events.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gridchain.protocol.address import format_address
from gridchain.protocol.tx import PlaceOrder, Transaction, sign_tx
from tests.procs import Chain, NodeProcess, http_get, make_chain, node_for, submit, wait_committed

pytestmark = pytest.mark.integration

SLOT_MS = 60_000


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Chain, NodeProcess]]:
    directory: Path = tmp_path_factory.mktemp("markets") / "chain"
    chain = make_chain(directory, block_interval_ms=50, slot_length_ms=SLOT_MS)
    node = node_for(chain).start()
    yield chain, node
    node.terminate()


def _slot(node: NodeProcess) -> int:
    _, markets = http_get(node.api_url + "/v1/markets")
    return int(markets["first_open_slot"]["intraday"]) + 2


def _order(chain: Chain, who: int, nonce: int, body: PlaceOrder) -> Transaction:
    return sign_tx(chain.peer(who), chain.chain_id, nonce, body)


def _commit(node: NodeProcess, tx: Transaction) -> dict[str, Any]:
    status, body = submit(node.api_url, tx)
    assert status == 202, body
    return wait_committed(node.api_url, tx.hash().hex())


async def _trade_events(url: str, tx: Transaction) -> list[dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(url + "/v1/events") as ws,
    ):
        async with session.post(url + "/v1/txs", json={"tx": tx.encode().hex()}) as resp:
            assert resp.status == 202
        messages: list[dict[str, Any]] = []
        while True:
            msg = await asyncio.wait_for(ws.receive_json(), timeout=20)
            messages.append(msg)
            if msg["type"] == "block_committed" and tx.hash().hex() in msg["txs"]:
                break
        for _ in range(msg["market_events"]):
            messages.append(await asyncio.wait_for(ws.receive_json(), timeout=5))
    return messages


def test_books_orders_trades_and_events(market: tuple[Chain, NodeProcess]) -> None:
    chain, node = market
    url = node.api_url
    status, markets = http_get(url + "/v1/markets")
    assert status == 200
    assert markets["slot_length_ms"] == SLOT_MS
    assert markets["matching_rule"] == "price_time"
    slot = _slot(node)

    # Peer A sells 1.2 kWh as an iceberg showing 0.3 kWh, and 0.5 kWh at a higher price.
    ice = _order(chain, 0, 0, PlaceOrder(1, slot, 1, 2, 120_000, 1200, 300, 0))
    dear = _order(chain, 0, 1, PlaceOrder(1, slot, 1, 1, 150_000, 500, 0, 0))
    _commit(node, ice)
    _commit(node, dear)
    status, book = http_get(f"{url}/v1/markets/intraday/slots/{slot}/book")
    assert status == 200
    assert book["asks"] == [
        {"price_mc_per_kwh": 120_000, "quantity_wh": 300, "orders": 1},  # the clip only
        {"price_mc_per_kwh": 150_000, "quantity_wh": 500, "orders": 1},
    ]
    assert (book["best_bid"], book["best_ask"], book["open"]) == (None, 120_000, True)

    # Peer B buys 0.7 kWh at up to 130: three fills at 120 (clips refill in between).
    bid = _order(chain, 1, 0, PlaceOrder(1, slot, 0, 0, 130_000, 700, 0, 0))
    messages = asyncio.run(_trade_events(url, bid))
    trades = [m for m in messages if m["type"] == "trade"]
    assert [(t["quantity_wh"], t["price_mc_per_kwh"]) for t in trades] == [
        (300, 120_000),
        (300, 120_000),
        (100, 120_000),
    ]
    assert {t["buyer"] for t in trades} == {format_address(chain.address(1))}
    orders = {m["order"]["id"]: m for m in messages if m["type"] == "order"}
    assert orders[bid.hash().hex()]["event"] == "placed"
    assert orders[bid.hash().hex()]["order"]["status"] == "filled"
    assert orders[ice.hash().hex()]["event"] == "traded"

    status, order = http_get(f"{url}/v1/orders/{ice.hash().hex()}")
    assert status == 200
    assert (order["filled_wh"], order["open_wh"], order["display_wh"]) == (700, 500, 200)
    assert (order["side"], order["device"], order["iceberg"]) == ("sell", "PV", True)

    buyer = format_address(chain.address(1))
    status, listed = http_get(f"{url}/v1/trades?address={buyer}&slot={slot}")
    assert status == 200
    assert [t["trade_id"] for t in listed["trades"]] == [t["trade_id"] for t in trades]
    _, none = http_get(f"{url}/v1/trades?address={buyer}&slot={slot + 1}")
    assert none["trades"] == []
    _, day_ahead = http_get(f"{url}/v1/trades?market=day_ahead")
    assert day_ahead["trades"] == []
    seller = format_address(chain.address(0))
    _, mine = http_get(f"{url}/v1/orders?address={seller}&status=open")
    assert {o["id"] for o in mine["orders"]} == {ice.hash().hex(), dear.hash().hex()}

    _, account = http_get(f"{url}/v1/accounts/{buyer}")
    assert account["locked_mc"] == 84_000  # three contracts at 120 for 0.7 kWh


def test_pool_prices_per_interval(market: tuple[Chain, NodeProcess]) -> None:
    _, node = market
    status, body = http_get(f"{node.api_url}/v1/pool/prices?count=2&supply_wh=500&demand_wh=1000")
    assert status == 200
    first, second = body["intervals"]
    assert second["slot"] == first["slot"] + 1
    curve = {p["sdr_permille"]: p for p in first["curve"]}
    assert curve[0]["p_sell_mc_per_kwh"] == first["r_buy_mc_per_kwh"]
    assert curve[1000]["p_buy_mc_per_kwh"] == first["r_sell_mc_per_kwh"]
    quote = first["quote"]
    assert first["r_sell_mc_per_kwh"] <= quote["p_sell_mc_per_kwh"]
    assert quote["p_sell_mc_per_kwh"] <= quote["p_buy_mc_per_kwh"] <= first["r_buy_mc_per_kwh"]


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/v1/markets/nowhere/slots/1/book", 400, "invalid_request"),
        ("/v1/markets/intraday/slots/-1/book", 400, "invalid_request"),
        ("/v1/orders/" + "ab" * 32, 404, "not_found"),
        ("/v1/orders/xyz", 400, "invalid_request"),
        ("/v1/orders", 400, "invalid_request"),
        ("/v1/orders?address=gc1nonsense", 400, "bad_address"),
        ("/v1/trades?limit=0", 400, "invalid_request"),
        ("/v1/pool/prices?supply_wh=5", 400, "invalid_request"),
        ("/v1/pool/prices?count=97", 400, "invalid_request"),
    ],
)
def test_bad_queries_are_typed_refusals(
    market: tuple[Chain, NodeProcess], path: str, status: int, code: str
) -> None:
    _, node = market
    got, body = http_get(node.api_url + path)
    assert got == status, body
    assert body["error"]["code"] == code


def test_an_order_after_gate_closure_is_refused_at_submission(
    market: tuple[Chain, NodeProcess],
) -> None:
    chain, node = market
    peer_c = format_address(chain.address(2))
    _, before = http_get(f"{node.api_url}/v1/accounts/{peer_c}")
    closed_slot = 1  # the epoch's second slot closed long ago
    body = PlaceOrder(1, closed_slot, 0, 3, 1, 1, 0, 0)
    got, answer = submit(node.api_url, _order(chain, 2, before["pending_nonce"], body))
    assert got == 422
    assert answer["error"]["code"] == "gate_closed"
    _, after = http_get(f"{node.api_url}/v1/accounts/{peer_c}")
    assert after["pending_nonce"] == before["pending_nonce"]
