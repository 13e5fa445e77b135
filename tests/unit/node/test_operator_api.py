"""The operator page's files and its public reads (/v1/stats/*, offers) on an in-process node.

The offers must come in the order the matching engine walks them, or a taker would pick the
wrong one: under AdBEV an old ask can go before a cheaper new one, and the test proves the
listed first offer is the one a crossing buy trades with.  The stats must be the sums of the
records the private routes show, and the load the committed decisions with the source's PFL.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from gridchain.api.routes import PRIVATE_ROUTES, UI_ROUTES
from gridchain.market.scheduling.metrics import pfl_eq_4_4, pfl_eq_6_4
from gridchain.node.operator_page import CSP, FILES, STATIC_DIR
from gridchain.protocol.tx import PlaceOrder, sign_tx
from tests.unit.node.conftest import LiveNode, live_node

INTRADAY, BUY, SELL, LOAD, PV = 1, 0, 1, 3, 2


async def test_the_page_files_are_served_under_a_strict_policy(live: LiveNode) -> None:
    for route in UI_ROUTES:
        async with live.session.get(live.url + route.path) as resp:
            assert resp.status == 200, route.path
            assert resp.content_type == route.content_type
            assert resp.headers["Content-Security-Policy"] == CSP
            assert await resp.read() == (STATIC_DIR / FILES[route.name]).read_bytes()
    async with live.session.get(live.url + "/ui/../genesis.json") as resp:
        assert resp.status == 404
    status, body = await live.get("/ui/nothing.js")
    assert (status, body["error"]["code"]) == (404, "not_found")
    license_text = (STATIC_DIR / FILES["ui_chart_license"]).read_text()
    assert "MIT License" in license_text


async def _commit(live: LiveNode, peer: int, nonce: int, order: PlaceOrder) -> str:
    tx = sign_tx(live.chain.peer(peer), live.chain.chain_id, nonce, order)
    status, body = await live.post_tx(tx)
    assert status == 202, body
    await live.wait_committed(tx.hash().hex())
    return tx.hash().hex()


async def test_offers_come_in_matching_order_under_adbev(tmp_path: Path) -> None:
    # time weighs ten times the price: the older, dearer ask goes first
    async with live_node(
        tmp_path / "chain",
        matching_rule="adbev",
        adbev_price_weight=1,
        adbev_time_weight=10,
        slot_length_ms=60_000,
        gate_closure_ms=1000,
    ) as live:
        _, markets = await live.get("/v1/markets")
        slot = markets["first_open_slot"]["intraday"] + 1
        old = await _commit(live, 0, 0, PlaceOrder(INTRADAY, slot, SELL, PV, 130_000, 1000))
        new = await _commit(live, 0, 1, PlaceOrder(INTRADAY, slot, SELL, PV, 110_000, 1000))
        status, offers = await live.get(f"/v1/markets/intraday/slots/{slot}/offers")
        assert status == 200
        assert [(o["id"], o["priority"]) for o in offers["asks"]] == [(old, 1), (new, 2)]
        assert offers["matching_rule"] == "adbev"
        assert "owner" not in offers["asks"][0]

        buy = await _commit(live, 1, 0, PlaceOrder(INTRADAY, slot, BUY, LOAD, 130_000, 1000))
        _, trades = await live.get(f"/v1/trades?slot={slot}")
        assert [(t["sell_order"], t["buy_order"]) for t in trades["trades"]] == [(old, buy)]

        _, stats = await live.get(f"/v1/stats/slots?from={slot}&count=1")
        (one,) = stats["slots"]
        intraday = next(m for m in one["markets"] if m["market"] == "intraday")
        assert intraday == {
            "market": "intraday",
            "trades": 1,
            "volume_wh": 1000,
            "vwap_mc_per_kwh": 130_000,
            "low_mc_per_kwh": 130_000,
            "high_mc_per_kwh": 130_000,
            "best_bid": None,
            "best_ask": 110_000,
            "bid_depth_wh": 0,
            "ask_depth_wh": 1000,
        }
        assert one["settlement"]["receipts"] == 0


async def test_offers_come_in_price_time_order_by_default(live: LiveNode) -> None:
    _, markets = await live.get("/v1/markets")
    slot = markets["first_open_slot"]["intraday"] + 1
    dear = await _commit(live, 0, 0, PlaceOrder(INTRADAY, slot, SELL, PV, 130_000, 1000))
    cheap = await _commit(live, 0, 1, PlaceOrder(INTRADAY, slot, SELL, PV, 110_000, 1000))
    bid = await _commit(live, 1, 0, PlaceOrder(INTRADAY, slot, BUY, LOAD, 90_000, 500))
    _, offers = await live.get(f"/v1/markets/intraday/slots/{slot}/offers?limit=1")
    assert [o["id"] for o in offers["asks"]] == [cheap]
    _, offers = await live.get(f"/v1/markets/intraday/slots/{slot}/offers")
    assert [o["id"] for o in offers["asks"]] == [cheap, dear]
    assert [(o["id"], o["side"], o["display_wh"]) for o in offers["bids"]] == [(bid, "buy", 500)]
    status, body = await live.get(f"/v1/markets/intraday/slots/{slot}/offers?limit=0")
    assert (status, body["error"]["code"]) == (400, "invalid_request")


async def test_load_stats_are_the_committed_decisions_with_their_pfl(live: LiveNode) -> None:
    _, empty = await live.get("/v1/stats/load")
    assert (empty["intervals"], empty["pfl_base"], empty["pfl_scheduled"]) == ([], None, None)
    tx = live.cd_tx(0, 0, stay_ms=6000)
    status, body = await live.post_tx(tx)
    assert status == 202, body

    await live.wait_committed(tx.hash().hex())
    deadline = time.monotonic() + 30
    while len((await live.get("/v1/schedule?limit=100"))[1]["decisions"]) < 3:
        assert time.monotonic() < deadline, "three intervals not decided within 30 s"
        await asyncio.sleep(0.1)
    _, schedule = await live.get("/v1/schedule?limit=100")
    _, load = await live.get("/v1/stats/load?limit=100")
    decisions = list(reversed(schedule["decisions"]))
    got = [(i["interval"], i["base_load_w"], i["load_w"]) for i in load["intervals"]]
    assert got[: len(decisions)] == [
        (d["interval"], d["base_load_w"], d["load_w"]) for d in decisions
    ]
    loads = [float(i["load_w"]) for i in load["intervals"]]
    assert load["pfl_scheduled"]["eq4_4"] == pfl_eq_4_4(loads)
    assert load["pfl_scheduled"]["eq6_4"] == pfl_eq_6_4(loads)
    assert load["interval_minutes"] == schedule["interval_minutes"]


def test_the_public_aggregates_stay_open_on_a_sealed_reads_only_node() -> None:
    assert {"list_offers", "get_slot_stats", "get_load_stats"}.isdisjoint(PRIVATE_ROUTES)
