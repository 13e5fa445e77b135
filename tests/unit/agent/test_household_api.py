"""The household page's agent routes on a fake node (ADR 0042).

Taking an offer and requesting a charge sign through the agent; every refusal (wrong types, a
limit, an offer gone, one's own or not the first, a closed book, no meter, a past deadline) is
a typed 4xx that signs, sends and logs nothing.  The account read sets each receipt against the
slot's tariff; a node that does not answer is 502 ``node_unreachable``.  The page's files are
served with their security policy.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest
from aiohttp.test_utils import TestClient, TestServer

from gridchain.agent.api import make_app
from gridchain.agent.config import AgentConfig, BatteryConfig, EVConfig, Limits
from gridchain.agent.household import earnings, receipt_view
from gridchain.agent.runner import Agent
from gridchain.api import models as m
from gridchain.api.client import NodeClient, NodeUnreachableError
from gridchain.protocol.crypto import SigningKey
from gridchain.protocol.tx import CDRequest, PlaceOrder
from tests.unit.agent.test_api import NOW_MS, SLOT_MS, FakeNode

ME = "gc1" + "00" * 24
OTHER = "gc1" + "11" * 24
FIRST_OPEN = NOW_MS // SLOT_MS + 5
SLOT = FIRST_OPEN + 1


def _offer(n: int, side: str, price: int, wh: int, priority: int) -> m.Offer:
    return m.Offer(
        id=f"{n:064x}", side=side, price_mc_per_kwh=price, display_wh=wh, iceberg=False,
        seq=n, priority=priority,
    )  # fmt: skip


def _order(offer: m.Offer, slot: int) -> m.Order:
    return m.Order(
        id=offer.id, owner=ME, market="intraday", slot=slot, side=offer.side, device="PV",
        price_mc_per_kwh=offer.price_mc_per_kwh, quantity_wh=offer.display_wh, iceberg=False,
        peak_wh=0, open_wh=offer.display_wh, display_wh=offer.display_wh, hidden_wh=0,
        filled_wh=0, cancelled_wh=0, locked_mc=0, status="open", seq=offer.seq,
        placed_height=1, placed_ms=NOW_MS, expires_ms=0,
    )  # fmt: skip


def _receipt(
    trade_id: int, *, seller: str, buyer: str, delivered: int, fine_paid: int
) -> m.Receipt:
    reading = {"start_wh": 0, "end_wh": 0, "metered_wh": 0, "metering": "metered"}
    pool = {"p_sell_mc_per_kwh": 0, "p_buy_mc_per_kwh": 0, "seller_wh": 0, "seller_mc": 0,
            "buyer_wh": 0, "buyer_mc": 0}  # fmt: skip
    return m.Receipt.model_validate(
        {
            "trade_id": trade_id, "market": "intraday", "slot": 7, "seller": seller,
            "buyer": buyer, "seller_device": "PV", "buyer_device": "Load",
            "seller_reading": reading, "buyer_reading": reading, "quantity_wh": 1000,
            "delivered_wh": delivered, "taken_wh": delivered, "shortfall_wh": 1000 - delivered,
            "price_mc_per_kwh": 150_000, "escrow_mc": 150_000,
            "paid_mc": 150 * delivered, "released_mc": 150_000 - 150 * delivered,
            "fine_mc": fine_paid, "fine_paid_mc": fine_paid, "pool": pool,
            "status": "delivered" if delivered == 1000 else "partial",
            "shortfall_reason": None if delivered == 1000 else "missing_readings",
            "height": 3, "settled_ms": NOW_MS,
        }
    )  # fmt: skip


def _tariff(slot: int) -> m.PoolInterval:
    return m.PoolInterval(
        slot=slot, start_ms=slot * SLOT_MS, end_ms=(slot + 1) * SLOT_MS, hour_utc=0,
        r_buy_mc_per_kwh=250_000, r_sell_mc_per_kwh=80_000, curve=[],
    )  # fmt: skip


class BookNode(FakeNode):
    """The fake node with a book, the account's orders, receipts, tariffs and C&D requests."""

    def __init__(self) -> None:
        super().__init__()
        self.asks = [_offer(1, "sell", 120_000, 200, 1), _offer(2, "sell", 130_000, 250, 2)]
        self.bids = [_offer(3, "buy", 90_000, 600, 1)]
        self.mine: list[m.Order] = []
        self.open = True
        self.down = False
        self.receipt_list: list[m.Receipt] = []

    def _check(self) -> None:
        if self.down:
            raise NodeUnreachableError("GET http://127.0.0.1:1/v1/...: connection refused")

    async def offers(self, market: str, slot: int) -> m.Offers:
        self._check()
        return m.Offers(
            market=market, slot=slot, height=5, open=self.open, matching_rule="price_time",
            asks=self.asks, bids=self.bids,
        )  # fmt: skip

    async def orders(
        self, address: str, *, slot: int | None = None, status: str | None = None
    ) -> list[m.Order]:
        self._check()
        return [o for o in self.mine if slot is None or o.slot == slot]

    async def account(self, address: str) -> Any:
        self._check()
        return m.Account(
            address=ME, balance_mc=5_000_000, locked_mc=30_000, spendable_mc=4_970_000,
            nonce=len(self.submitted), pending_nonce=len(self.submitted), registered=True,
            name="peer-a",
        )  # fmt: skip

    async def trades(self, **_: Any) -> list[Any]:
        self._check()
        return []

    async def receipts(self, **_: Any) -> list[m.Receipt]:
        self._check()
        return self.receipt_list

    async def pool_prices(self, *, slot: int, count: int) -> m.PoolPrices:
        self._check()
        return m.PoolPrices(intervals=[_tariff(s) for s in range(slot, slot + count)])

    async def cd_requests(self, owner: str | None, **_: Any) -> list[m.CDRequest]:
        self._check()
        return []

    async def markets(self) -> m.Markets:
        self._check()
        return await super().markets()


Served = tuple[TestClient[Any, Any], BookNode, Agent]


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    config = AgentConfig(
        name="peer-a",
        node_url="http://127.0.0.1:1",
        wallet=tmp_path / "w.json",
        history={"file": tmp_path / "h.csv"},
        limits=Limits(max_sell_wh_per_slot=500, max_buy_wh_per_slot=220,
                      min_sell_price_mc_per_kwh=80_000, max_buy_price_mc_per_kwh=300_000),
        ev=EVConfig(meter="ev-a", capacity_kwh=40, max_charge_kw=7),
        battery=BatteryConfig(),  # no meter: no C&D request for it
    )  # fmt: skip
    node = BookNode()
    agent = Agent(config, SigningKey.generate(), ME, cast(NodeClient, node), now_ms=lambda: NOW_MS)
    async with TestClient(TestServer(make_app(agent))) as client:
        yield client, node, agent


async def _refused(client: TestClient[Any, Any], path: str, body: object) -> tuple[int, str]:
    resp = await client.post(path, json=body)
    doc = await resp.json()
    assert doc["error"]["message"]
    return resp.status, doc["error"]["code"]


def _nothing_sent(node: BookNode, agent: Agent) -> None:
    assert node.submitted == []
    assert agent.actions == []
    assert agent.placed_wh == {}


async def test_taking_the_first_offer_buys_it_at_its_price(served: Served) -> None:
    client, node, agent = served
    offer = node.asks[0]
    body = {"market": "intraday", "slot": SLOT, "offer_id": offer.id}
    resp = await client.post("/v1/take", json=body)
    assert resp.status == 201, await resp.text()
    action = await resp.json()
    [tx] = node.submitted
    assert isinstance(tx.body, PlaceOrder)
    assert (tx.body.market, tx.body.slot, tx.body.side) == (1, SLOT, 0)  # intraday, buy
    assert (tx.body.price_mc_per_kwh, tx.body.quantity_wh) == (120_000, 200)
    assert (action["origin"], action["market"], action["side"]) == ("user", "intraday", "buy")
    assert agent.placed_wh == {(SLOT, "buy"): 200}


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"offer_id": "zz"}, 400, "bad_request"),
        ({"slot": "next"}, 400, "bad_request"),
        ({"market": "spot"}, 400, "bad_request"),
        ({"extra": 1}, 400, "bad_request"),
        ({"offer_id": f"{99:064x}"}, 409, "offer_gone"),
        ({"offer_id": f"{2:064x}"}, 409, "offer_not_first"),  # the 120 ask is met first
        ({"offer_id": f"{3:064x}"}, 422, "over_user_limit"),  # selling 600 Wh > 500 a slot
    ],
)
async def test_bad_takes_are_refused_and_change_nothing(
    served: Served, change: dict[str, object], status: int, code: str
) -> None:
    client, node, agent = served
    body = {"market": "intraday", "slot": SLOT, "offer_id": node.asks[0].id, **change}
    assert await _refused(client, "/v1/take", body) == (status, code)
    _nothing_sent(node, agent)


async def test_ones_own_offer_and_a_closed_book_are_refused(served: Served) -> None:
    client, node, agent = served
    node.mine = [_order(node.asks[0], SLOT)]
    body = {"market": "intraday", "slot": SLOT, "offer_id": node.asks[0].id}
    assert await _refused(client, "/v1/take", body) == (409, "own_offer")
    node.mine, node.open = [], False
    assert await _refused(client, "/v1/take", body) == (409, "slot_closed")
    _nothing_sent(node, agent)


async def test_a_charge_request_is_signed_with_the_ev_meter(served: Served) -> None:
    client, node, _agent = served
    departure = NOW_MS + 3_600_000
    body = {"device": "EV", "energy_wh": 5000, "max_rate_w": 3000, "departure_ms": departure}
    resp = await client.post("/v1/charge", json=body)
    assert resp.status == 201, await resp.text()
    [tx] = node.submitted
    assert isinstance(tx.body, CDRequest)
    assert (tx.body.meter_id, tx.body.energy_wh, tx.body.max_rate_w) == ("ev-a", 5000, 3000)
    assert (tx.body.arrival_ms, tx.body.departure_ms) == (NOW_MS, departure)
    assert tx.body.limit_price_mc_per_kwh == 300_000  # the user's maximum buy price
    action = await resp.json()
    assert (action["kind"], action["side"], action["device"]) == ("cd_request", "charge", "EV")


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"energy_wh": "5"}, 400, "bad_request"),
        ({"energy_wh": 0}, 400, "bad_request"),
        ({"device": "PV"}, 400, "bad_request"),
        ({"device": "Battery"}, 409, "no_device_meter"),
        ({"departure_ms": NOW_MS}, 409, "deadline_passed"),
        ({"energy_wh": 40_001}, 422, "over_user_limit"),  # beyond the EV's capacity
        ({"max_rate_w": 7001}, 422, "over_user_limit"),
        ({"limit_price_mc_per_kwh": 300_001}, 422, "over_user_limit"),
    ],
)
async def test_bad_charge_requests_are_refused_and_change_nothing(
    served: Served, change: dict[str, object], status: int, code: str
) -> None:
    client, node, agent = served
    good = {"device": "EV", "energy_wh": 5000, "max_rate_w": 3000, "departure_ms": NOW_MS + 1}
    assert await _refused(client, "/v1/charge", {**good, **change}) == (status, code)
    _nothing_sent(node, agent)


async def test_the_household_read_sets_receipts_against_the_tariffs(served: Served) -> None:
    client, node, _agent = served
    node.receipt_list = [
        _receipt(1, seller=ME, buyer=OTHER, delivered=1000, fine_paid=0),
        _receipt(2, seller=ME, buyer=OTHER, delivered=400, fine_paid=6_000),
        _receipt(3, seller=OTHER, buyer=ME, delivered=1000, fine_paid=0),
    ]
    resp = await client.get("/v1/household")
    assert resp.status == 200, await resp.text()
    doc = await resp.json()
    assert doc["account"]["balance_mc"] == 5_000_000
    by_trade = {v["receipt"]["trade_id"]: v for v in doc["receipts"]}
    # sold 1 kWh at 0.150 against a feed-in of 0.080: +0.070
    assert (by_trade[1]["role"], by_trade[1]["vs_tariff_mc"]) == ("seller", 70_000)
    # sold 0.4 of 1 kWh: paid 60 000, fined 6 000, feed-in would have paid 32 000
    assert by_trade[2]["vs_tariff_mc"] == 60_000 - 6_000 - 32_000
    assert by_trade[2]["receipt"]["shortfall_reason"] == "missing_readings"
    # bought 1 kWh at 0.150 against retail 0.250: +0.100
    assert (by_trade[3]["role"], by_trade[3]["vs_tariff_mc"]) == ("buyer", 100_000)
    e = doc["earnings"]
    assert (e["sold_wh"], e["sold_paid_mc"], e["sold_at_feed_in_mc"]) == (1400, 210_000, 112_000)
    bought = (e["bought_wh"], e["bought_paid_mc"], e["bought_at_retail_mc"])
    assert bought == (1000, 150_000, 250_000)
    assert e["vs_tariffs_mc"] == 70_000 + 22_000 + 100_000


def test_earnings_of_no_receipts_are_zero() -> None:
    assert earnings([]).vs_tariffs_mc == 0
    view = receipt_view(ME, _receipt(1, seller=ME, buyer=OTHER, delivered=0, fine_paid=0), None)
    assert (view.role, view.vs_tariff_mc, view.feed_in_mc_per_kwh) == ("seller", None, None)


async def test_a_node_that_does_not_answer_is_502_and_the_agent_says_so(served: Served) -> None:
    client, node, agent = served
    node.down = True
    for path in ("/v1/household", f"/v1/offers?market=intraday&slot={SLOT}"):
        resp = await client.get(path)
        assert (resp.status, (await resp.json())["error"]["code"]) == (502, "node_unreachable")
    assert agent.node_reachable is False
    take = {"market": "intraday", "slot": SLOT, "offer_id": "0" * 64}
    resp = await client.post("/v1/take", json=take)
    assert resp.status == 502
    _nothing_sent(node, agent)


async def test_offers_mark_the_households_own(served: Served) -> None:
    client, node, _ = served
    node.mine = [_order(node.asks[1], SLOT)]
    doc = await (await client.get(f"/v1/offers?market=intraday&slot={SLOT}")).json()
    assert doc["own"] == [node.asks[1].id]
    assert [o["id"] for o in doc["offers"]["asks"]] == [o.id for o in node.asks]
    for query in ("market=spot&slot=1", "market=intraday", "market=intraday&slot=-1"):
        resp = await client.get("/v1/offers?" + query)
        assert (resp.status, (await resp.json())["error"]["code"]) == (400, "bad_request")


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/", "text/html"),
        ("/household.js", "text/javascript"),
        ("/pagekit.js", "text/javascript"),
        ("/household.css", "text/css"),
        ("/uplot.min.js", "text/javascript"),
        ("/uplot-LICENSE.txt", "text/plain"),
    ],
)
async def test_the_page_files_are_served_with_their_policy(
    served: Served, path: str, kind: str
) -> None:
    client, _, _ = served
    resp = await client.get(path)
    assert resp.status == 200
    assert resp.content_type == kind
    assert "connect-src 'self'" in resp.headers["Content-Security-Policy"]
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert len(await resp.read()) > 100


async def test_no_other_file_is_reachable(served: Served) -> None:
    client, _, _ = served
    for path in ("/../pyproject.toml", "/agent/page.py", "/ui_static/index.html", "/%2e%2e/x"):
        assert (await client.get(path)).status == 404
