"""Public aggregates for the operator page (/ui/, ADR 0038): per-slot market and settlement
figures, a book's individual offers, and the community load against the schedule.

Why aggregates of their own: the page must work on a node that serves private data only
through sealed reads (``api.sealed_reads_only``), where ``/v1/trades`` and ``/v1/settlements``
are refused.  Sums, counts and prices per slot say nothing about one account, so they are
served openly, computed here from the same records those routes read.  Nothing here writes.
"""

from __future__ import annotations

import math
from collections import Counter

from gridchain.api import models as m
from gridchain.market.book import BUY, SELL, BookOrder, Rules, adbev_priority
from gridchain.market.cd_requests import IntervalClock
from gridchain.market.cd_schedule import Decision
from gridchain.market.orders import Exchange, OrderRecord, book_levels, contracts, resting_orders
from gridchain.market.scheduling.errors import ScenarioError
from gridchain.market.settlement import receipts
from gridchain.market.slot_settlement import get_pool_slot
from gridchain.market.state import StateReader
from gridchain.node.views import shortfall_reason
from gridchain.protocol.tx import Market, Side


def book_offers(
    state: StateReader, exchange: Exchange, market: Market, slot: int, limit: int
) -> tuple[list[m.Offer], list[m.Offer]]:
    """(asks, bids) of one book, each in the order an incoming order meets them."""
    return (
        _side_offers(resting_orders(state, market, slot, SELL), SELL, exchange.rules, limit),
        _side_offers(resting_orders(state, market, slot, BUY), BUY, exchange.rules, limit),
    )


def _side_offers(records: list[OrderRecord], side: int, rules: Rules, limit: int) -> list[m.Offer]:
    """``records`` come in price-time priority; under AdBEV the matching walks them by the
    weighted rank instead (market.book.adbev_priority), so they are listed that way."""
    ordered = records
    if rules.ranking == "adbev":
        by_id = {r.order_id: r for r in records}
        ranked = adbev_priority([_book_order(r) for r in records], side, rules)
        ordered = [by_id[o.order_id] for o in ranked]
    return [
        m.Offer(
            id=r.order_id.hex(),
            side=Side(r.side).label,
            price_mc_per_kwh=r.price_mc_per_kwh,
            display_wh=r.display_wh,
            iceberg=r.peak_wh > 0,
            seq=r.seq,
            priority=rank,
        )
        for rank, r in enumerate(ordered[:limit], start=1)
    ]


def _book_order(record: OrderRecord) -> BookOrder:
    return BookOrder(
        order_id=record.order_id,
        owner=record.owner,
        side=record.side,
        price=record.price_mc_per_kwh,
        open_wh=record.open_wh,
        display_wh=record.display_wh,
        peak_wh=record.peak_wh,
        seq=record.seq,
    )


def slot_figures(
    state: StateReader, book_state: StateReader, slot: int, slot_ms: int
) -> m.SlotStats:
    """One slot's books and settlement.  ``state`` holds every record the chain ever kept
    (live and archived), ``book_state`` the live books."""
    markets = []
    for market in Market:
        prices: list[tuple[int, int]] = [
            (c.price_mc_per_kwh, c.quantity_wh)
            for c in contracts(state, slot=slot)
            if c.market == market
        ]
        volume = sum(q for _, q in prices)
        bids = book_levels(book_state, market, slot, BUY)
        asks = book_levels(book_state, market, slot, SELL)
        markets.append(
            m.MarketSlotStats(
                market=market.label,
                trades=len(prices),
                volume_wh=volume,
                vwap_mc_per_kwh=sum(p * q for p, q in prices) // volume if volume else None,
                low_mc_per_kwh=min((p for p, _ in prices), default=None),
                high_mc_per_kwh=max((p for p, _ in prices), default=None),
                best_bid=bids[0][0] if bids else None,
                best_ask=asks[0][0] if asks else None,
                bid_depth_wh=sum(q for _, q, _ in bids),
                ask_depth_wh=sum(q for _, q, _ in asks),
            )
        )
    settled = receipts(state, slot=slot)
    reasons = Counter(reason for r in settled if (reason := shortfall_reason(r)) is not None)
    delivered = sum(r.delivered_wh for r in settled)
    taken = sum(r.taken_wh for r in settled)
    # The slot's pool (ADR 0041) clears every household, with or without a trade.
    pool = get_pool_slot(state, slot)
    return m.SlotStats(
        slot=slot,
        start_ms=slot * slot_ms,
        end_ms=(slot + 1) * slot_ms,
        markets=markets,
        settlement=m.SettlementStats(
            receipts=len(settled),
            traded_wh=sum(r.quantity_wh for r in settled),
            delivered_wh=delivered,
            taken_wh=taken,
            shortfall_wh=sum(r.shortfall_wh for r in settled),
            imbalance_wh=delivered - taken,
            fines_mc=sum(r.fine_mc for r in settled),
            pool_p_sell_mc_per_kwh=None if pool is None else pool.p_sell_mc_per_kwh,
            pool_p_buy_mc_per_kwh=None if pool is None else pool.p_buy_mc_per_kwh,
            shortfall_reasons=dict(sorted(reasons.items())),
        ),
    )


def load_figures(decisions: list[Decision], clock: IntervalClock) -> m.LoadStats:
    """``decisions`` newest first (as latest_decisions gives them), shown oldest first."""
    ordered = sorted(decisions, key=lambda d: d.interval)
    interval_minutes = clock.interval_minutes
    return m.LoadStats(
        interval_minutes=interval_minutes,
        intervals=[
            m.LoadInterval(
                interval=d.interval,
                start_ms=clock.start_ms(d.interval),
                end_ms=clock.start_ms(d.interval) + clock.interval_ms,
                base_load_w=d.base_load_w,
                load_w=d.load_w,
            )
            for d in ordered
        ],
        pfl_base=_pfl([d.base_load_w for d in ordered], interval_minutes),
        pfl_scheduled=_pfl([d.load_w for d in ordered], interval_minutes),
    )


def _pfl(load_w: list[int], interval_minutes: int) -> m.PowerFluctuation | None:
    """The four PFL forms, or None with fewer than two intervals; eq. 3.11 alone is null
    where it is undefined (a flat load, or a mean at or below zero)."""
    if len(load_w) < 2:
        return None
    # numpy (about 20 MiB resident) is loaded by the first page that asks, not by the
    # validator's start (ADR 0054).
    from gridchain.market.scheduling.metrics import (  # noqa: PLC0415
        pfl_eq_3_11,
        pfl_eq_4_4,
        pfl_eq_5_7,
        pfl_eq_6_4,
    )

    profile = [float(w) for w in load_w]
    try:
        ratio: float | None = pfl_eq_3_11(profile)
    except ScenarioError:
        ratio = None
    return m.PowerFluctuation(
        eq3_11=ratio if ratio is not None and math.isfinite(ratio) else None,
        eq4_4=pfl_eq_4_4(profile),
        eq5_7=pfl_eq_5_7(profile, interval_minutes),
        eq6_4=pfl_eq_6_4(profile),
    )
