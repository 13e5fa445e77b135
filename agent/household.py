"""What the household page needs beyond the plan: the account's chain data, taking an offer,
and asking for a charge, each through the agent (ADR 0042).

The page runs in the household's browser and talks only to the agent on the device (same
origin); the agent reads the node for its own address and signs with the household key, so
the key never leaves the device.  Reads go through the typed node client; a node that does not
answer is the client's :class:`~gridchain.api.client.NodeUnreachableError`, which the API
answers 502 and the page shows as a banner.

Every action is checked before anything is signed: a refusal is a typed error and signs,
sends and logs nothing (the same rule as ``POST /v1/orders``).
"""

from __future__ import annotations

from collections.abc import Iterable

from gridchain.agent.errors import (
    DeadlinePassedError,
    LimitExceededError,
    NoDeviceMeterError,
    OfferGoneError,
    OfferNotFirstError,
    OwnOfferError,
    SlotClosedError,
)
from gridchain.agent.models import (
    Action,
    ChargeRequest,
    Earnings,
    Household,
    HouseholdOffers,
    OrderRequest,
    ReceiptView,
    TakeRequest,
)
from gridchain.agent.runner import Agent
from gridchain.api import models as m
from gridchain.protocol.tx import CD_KIND_BY_LABEL, DEVICE_BY_LABEL, CDRequest
from gridchain.wallet.offers import offers_ahead

#: Trades and receipts the page lists (newest first); the earnings count the receipts shown.
SHOWN = 20
#: The pool's price endpoint serves at most 96 slots a request.
POOL_PAGE = 96


def _cost_mc(price_mc_per_kwh: int, wh: int) -> int:
    return price_mc_per_kwh * wh // 1000


async def _tariffs(agent: Agent, slots: Iterable[int]) -> dict[int, m.PoolInterval]:
    """The chain's retail and feed-in tariffs of ``slots``, a page of up to 96 slots a read."""
    wanted = sorted(set(slots))
    found: dict[int, m.PoolInterval] = {}
    i = 0
    while i < len(wanted):
        first = wanted[i]
        page = await agent.node.pool_prices(slot=first, count=POOL_PAGE)
        for interval in page.intervals:
            found[interval.slot] = interval
        while i < len(wanted) and wanted[i] < first + POOL_PAGE:
            i += 1
    return found


def receipt_view(address: str, receipt: m.Receipt, tariff: m.PoolInterval | None) -> ReceiptView:
    """The receipt from the household's side, set against the slot's tariff."""
    role = "seller" if receipt.seller == address else "buyer"
    vs: int | None = None
    if tariff is not None:
        if role == "seller":
            feed_in = _cost_mc(tariff.r_sell_mc_per_kwh, receipt.delivered_wh)
            vs = receipt.paid_mc - receipt.fine_paid_mc - feed_in
        else:
            retail = _cost_mc(tariff.r_buy_mc_per_kwh, receipt.delivered_wh)
            vs = retail - receipt.paid_mc + receipt.fine_paid_mc
    return ReceiptView(
        role=role,
        receipt=receipt,
        feed_in_mc_per_kwh=None if tariff is None else tariff.r_sell_mc_per_kwh,
        retail_mc_per_kwh=None if tariff is None else tariff.r_buy_mc_per_kwh,
        vs_tariff_mc=vs,
    )


def earnings(views: list[ReceiptView]) -> Earnings:
    """The receipts' totals against feed-in (sales) and retail (purchases)."""
    sold = [v for v in views if v.role == "seller"]
    bought = [v for v in views if v.role == "buyer"]

    def at(views: list[ReceiptView], tariff: str) -> int:
        total = 0
        for v in views:
            price = v.feed_in_mc_per_kwh if tariff == "feed_in" else v.retail_mc_per_kwh
            total += _cost_mc(price or 0, v.receipt.delivered_wh)
        return total

    totals = Earnings(
        receipts=len(views),
        sold_wh=sum(v.receipt.delivered_wh for v in sold),
        sold_paid_mc=sum(v.receipt.paid_mc for v in sold),
        sold_at_feed_in_mc=at(sold, "feed_in"),
        bought_wh=sum(v.receipt.delivered_wh for v in bought),
        bought_paid_mc=sum(v.receipt.paid_mc for v in bought),
        bought_at_retail_mc=at(bought, "retail"),
        fines_paid_mc=sum(v.receipt.fine_paid_mc for v in sold),
        fines_received_mc=sum(v.receipt.fine_paid_mc for v in bought),
        vs_tariffs_mc=0,
    )
    vs = (totals.sold_paid_mc - totals.fines_paid_mc - totals.sold_at_feed_in_mc) + (
        totals.bought_at_retail_mc - totals.bought_paid_mc + totals.fines_received_mc
    )
    return totals.model_copy(update={"vs_tariffs_mc": vs})


async def household(agent: Agent) -> Household:
    """The account's balance, open orders, recent trades and receipts, and C&D requests."""
    node, address = agent.node, agent.address
    markets = await node.markets()
    account = await node.account(address)
    orders = await node.orders(address, status="open")
    trades = await node.trades(address=address)
    receipts = await node.receipts(address=address)
    agent.node_reachable = True
    recent = sorted(receipts, key=lambda r: (r.slot, r.trade_id), reverse=True)[:SHOWN]
    tariffs = await _tariffs(agent, (r.slot for r in recent))
    views = [receipt_view(address, r, tariffs.get(r.slot)) for r in recent]
    requests = await node.cd_requests(address)
    return Household(
        name=agent.config.name,
        address=address,
        node_url=agent.config.node_url,
        markets=markets,
        account=account,
        open_orders=sorted(orders, key=lambda o: (o.slot, o.market, o.side, o.price_mc_per_kwh)),
        trades=sorted(trades, key=lambda t: t.trade_id, reverse=True)[:SHOWN],
        receipts=views,
        earnings=earnings(views),
        cd_requests=sorted(requests, key=lambda r: r.submitted_height, reverse=True)[:SHOWN],
        actions=agent.actions[::-1][:SHOWN],
    )


async def book_offers(agent: Agent, market: str, slot: int) -> HouseholdOffers:
    offers = await agent.node.offers(market, slot)
    mine = await agent.node.orders(agent.address, slot=slot, status="open")
    own = sorted(o.id for o in mine if o.market == market)
    return HouseholdOffers(offers=offers, own=own)


async def take(agent: Agent, request: TakeRequest) -> Action:
    """Take one offer at its price for its displayed quantity, within the user's limits.

    As ``wallet take``: the order is of the other side at the offer's price, and it is refused
    unless the chosen offer is the first such an order would meet, so a take never trades with
    somebody else silently.
    """
    markets = await agent.node.markets()
    offers = await agent.node.offers(request.market, request.slot)
    offer = next((o for o in [*offers.asks, *offers.bids] if o.id == request.offer_id), None)
    if not offers.open:
        raise SlotClosedError(
            f"{request.market} slot {request.slot} is past its gate closure; the first open "
            f"slot is {markets.first_open_slot.get(request.market, '?')}"
        )
    if offer is None:
        raise OfferGoneError(
            f"offer {request.offer_id[:16]} is not in the {request.market} book of slot "
            f"{request.slot} any more (matched or cancelled); reload the book"
        )
    mine = await agent.node.orders(agent.address, slot=request.slot, status="open")
    if offer.id in {o.id for o in mine}:
        raise OwnOfferError(f"offer {offer.id[:16]} is your own order")
    ahead = offers_ahead(offers, offer)
    if ahead:
        raise OfferNotFirstError(
            f"an order at {offer.price_mc_per_kwh} mc/kWh would meet {len(ahead)} other "
            f"offer(s) first; take {ahead[0].id[:16]} first, or place an order"
        )
    side = "buy" if offer.side == "sell" else "sell"
    order = OrderRequest(
        side=side,
        slot=request.slot,
        quantity_wh=offer.display_wh,
        price_mc_per_kwh=offer.price_mc_per_kwh,
        device=request.device,
        market=request.market,
    )
    return await agent.place(order, origin="user", plan_version=None, markets=markets)


def charge_body(agent: Agent, request: ChargeRequest, now_ms: int) -> CDRequest:
    """The CDRequest the user asks for, or a typed refusal (nothing is signed yet)."""
    cfg = agent.config
    limits = cfg.limits
    if request.device == "EV":
        meter = None if cfg.ev is None else cfg.ev.meter
        capacity_kwh = None if cfg.ev is None else cfg.ev.capacity_kwh
        rate_kw = None if cfg.ev is None else cfg.ev.max_charge_kw
    else:
        meter = None if cfg.battery is None else cfg.battery.meter
        capacity_kwh = None if cfg.battery is None else cfg.battery.capacity_kwh
        rate_kw = None if cfg.battery is None else cfg.battery.max_charge_kw
    if meter is None or capacity_kwh is None or rate_kw is None:
        section = "ev" if request.device == "EV" else "battery"
        raise NoDeviceMeterError(
            f"the agent's configuration names no {request.device} meter ([{section}] meter): "
            "a C&D request needs the meter that measures the device"
        )
    if request.departure_ms <= now_ms:
        raise DeadlinePassedError(
            f"the departure time {request.departure_ms} ms is not in the future (now {now_ms})"
        )
    if request.energy_wh > capacity_kwh * 1000:
        raise LimitExceededError(
            f"{request.energy_wh} Wh is more than the {request.device}'s capacity "
            f"{capacity_kwh:g} kWh"
        )
    if request.max_rate_w > rate_kw * 1000:
        raise LimitExceededError(
            f"{request.max_rate_w} W is above the {request.device}'s maximum rate {rate_kw:g} kW"
        )
    charge = request.kind == "charge"
    price = request.limit_price_mc_per_kwh
    if price is None:
        price = limits.max_buy_price_mc_per_kwh if charge else limits.min_sell_price_mc_per_kwh
    if charge and price > limits.max_buy_price_mc_per_kwh:
        raise LimitExceededError(
            f"{price} mc/kWh is above the maximum buy price "
            f"{limits.max_buy_price_mc_per_kwh} mc/kWh"
        )
    if not charge and price < limits.min_sell_price_mc_per_kwh:
        raise LimitExceededError(
            f"{price} mc/kWh is below the minimum sell price "
            f"{limits.min_sell_price_mc_per_kwh} mc/kWh"
        )
    return CDRequest(
        kind=int(CD_KIND_BY_LABEL[request.kind]),
        device=int(DEVICE_BY_LABEL[request.device]),
        arrival_ms=now_ms,
        departure_ms=request.departure_ms,
        energy_wh=request.energy_wh,
        max_rate_w=request.max_rate_w,
        limit_price_mc_per_kwh=price,
        meter_id=meter,
    )


async def request_charge(agent: Agent, request: ChargeRequest) -> Action:
    """Check, sign and send the user's C&D request; a refused check sends and logs nothing."""
    body = charge_body(agent, request, agent.now_ms())
    return await agent.send_cd(body, origin="user", plan_version=None)
