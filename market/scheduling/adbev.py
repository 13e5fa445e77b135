"""AdBEV (source ch. 4, Tables 4-A and 4-B), seen as a scheduler: an order book per interval.

Each interval is one trading frame.  Every connected vehicle with energy left posts an order:
a buy (charge) or a sell (V2G discharge) whose quantity is the power it can take or give this
frame.  An order larger than the peak size (4 kW in the source) is an iceberg: only a clip of
the peak size is displayed and matched at a time, and when a clip fills, the next clip joins
the tail of the order's price level (its time rank grows by one, Table 4-A step 4).  Orders are
ranked by ``f = a*Rank(price) + b*Rank(time)`` with ``a = 10 b`` (eq. 4.14), best first.

The grid is the counterparty that makes this a flattening scheme.  From the day's forecast it
computes a flat target (the valley-filling level for the day's charge energy, and the
peak-shaving level for the V2G energy; AdBEV is the "offline AdBEV" of ch. 6, which knows the
expected arrivals) and in each frame offers the room below the target to buyers and asks for
discharge above the shaving level.  Table 4-B's best-order strategy then decides the frame:

1. demand within the grid's offer: every buy executes; sells execute only as far as the grid
   asks for peak shaving;
2. more buying than selling: sells are matched to buys, normal (non-iceberg) buys are filled
   from the grid next, then iceberg clips by rank while the offer lasts (aggressive iceberg
   execution); unfilled orders wait for the next frame;
3. more selling than buying: buys are matched to sells, sells fill the grid's shaving request
   by rank, and the rest wait passively with their priority kept.

An order that has waited ``wait_limit_min`` without any fill gets one clip from the grid
regardless (the waiting limit WT_max), and a charge request that would otherwise miss its
departure is filled first at the power it needs (the source's forced execution; it also keeps
the scheme's schedules valid).

Prices only rank orders.  The source draws them from a geometric Brownian motion around a
guide price; a common price path moves every order alike and so does not change any ranking,
so we price by urgency instead, in the source's 10-30 pence band: a buyer that needs a larger
share of its remaining connection time bids higher, a seller with more to give asks less.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gridchain.market.scheduling.base import (
    caps,
    peak_shave_level,
    to_schedule,
    valley_fill_level,
    zero_rates,
)
from gridchain.market.scheduling.model import Kind, Scenario, Schedule

PRICE_MIN_PENCE = 10
PRICE_MAX_PENCE = 30


@dataclass(slots=True)
class _Order:
    index: int
    buy: bool
    price: int
    time_rank: int
    quantity: int  # W still wanted (buy) or offered (sell) this frame
    iceberg: bool


def _rank(values: list[int], descending: bool) -> dict[int, int]:
    """Dense rank (1 = best) of distinct values."""
    distinct = sorted(set(values), reverse=descending)
    return {v: k + 1 for k, v in enumerate(distinct)}


def _sorted_book(orders: list[_Order], a: int, b: int, buy: bool) -> list[_Order]:
    # Buyers: higher bid is better.  Sellers: lower ask is better.  Older (smaller time) first.
    price_rank = _rank([o.price for o in orders], descending=buy)
    time_rank = _rank([o.time_rank for o in orders], descending=False)
    return sorted(
        orders,
        key=lambda o: (a * price_rank[o.price] + b * time_rank[o.time_rank], o.time_rank, o.index),
    )


def _execute(
    book: list[_Order],
    budget: int,
    *,
    peak_w: int,
    a: int,
    b: int,
    buy: bool,
    fills: list[int],
) -> int:
    """Fill clips in rank order until ``budget`` W is used; icebergs re-queue after each clip.

    Returns the budget left.  ``fills[index]`` accumulates what each order received.
    """
    queue = _sorted_book([o for o in book if o.quantity > 0], a, b, buy)
    while queue and budget > 0:
        order = queue.pop(0)
        clip = min(order.quantity, peak_w, budget)
        fills[order.index] += clip
        order.quantity -= clip
        budget -= clip
        if order.quantity > 0 and order.iceberg:
            # The next clip joins the tail of its price level: behind every order now queued.
            order.time_rank = max([o.time_rank for o in queue] + [order.time_rank]) + 1
            queue = _sorted_book([*queue, order], a, b, buy)
    return budget


@dataclass(frozen=True, slots=True)
class AdBEV:
    peak_w: int = 4_000
    price_weight: int = 10
    time_weight: int = 1
    wait_limit_min: int = 120
    name: str = "adbev"

    def schedule(self, scenario: Scenario) -> Schedule:
        reqs = scenario.requests
        n, horizon = len(reqs), scenario.n_intervals
        rates = zero_rates(scenario)
        remaining = caps(scenario)
        base = np.asarray(scenario.base_load_w, dtype=np.float64)
        charge_total = sum(u for u, r in zip(remaining, reqs, strict=True) if r.kind is Kind.CHARGE)
        v2g_total = sum(u for u, r in zip(remaining, reqs, strict=True) if r.kind is Kind.DISCHARGE)
        fill_level = valley_fill_level(base, charge_total)
        shave_level = peak_shave_level(base, v2g_total)
        wait_limit = max(1, self.wait_limit_min // scenario.interval_min)
        waited = [0] * n
        requeues = [0] * n
        a, b = self.price_weight, self.time_weight
        for t in range(horizon):
            live = [
                i for i in range(n) if reqs[i].arrival <= t < reqs[i].departure and remaining[i] > 0
            ]
            if not live:
                continue
            fills = [0] * n
            # Forced execution: what a charge request must take now to finish at full rate.
            for i in live:
                r = reqs[i]
                if r.kind is Kind.CHARGE:
                    left_after = r.departure - t - 1
                    fills[i] = max(0, remaining[i] - r.max_rate_w * left_after)
            offer = max(0, int(fill_level - base[t]) - sum(fills))
            shave = max(0, int(base[t] - shave_level))
            buys: list[_Order] = []
            sells: list[_Order] = []
            for i in live:
                r = reqs[i]
                room = min(r.max_rate_w, remaining[i]) - fills[i]
                if room <= 0:
                    continue
                left = max(1, r.departure - t)
                pressure = min(1.0, remaining[i] / (r.max_rate_w * left))
                band = PRICE_MAX_PENCE - PRICE_MIN_PENCE
                if r.kind is Kind.CHARGE:
                    price = PRICE_MIN_PENCE + round(band * pressure)
                else:
                    price = PRICE_MAX_PENCE - round(band * pressure)
                order = _Order(
                    i,
                    r.kind is Kind.CHARGE,
                    price,
                    r.arrival + requeues[i],
                    room,
                    room > self.peak_w,
                )
                (buys if order.buy else sells).append(order)
            demand = sum(o.quantity for o in buys)
            supply = sum(o.quantity for o in sells)
            if demand <= offer:
                for o in buys:
                    fills[o.index] += o.quantity
                    o.quantity = 0
                _execute(sells, shave, peak_w=self.peak_w, a=a, b=b, buy=False, fills=fills)
            elif supply < demand:
                for o in sells:
                    fills[o.index] += o.quantity
                    o.quantity = 0
                budget = offer + supply
                normal = [o for o in buys if not o.iceberg]
                budget = _execute(
                    normal, budget, peak_w=self.peak_w, a=a, b=b, buy=True, fills=fills
                )
                icebergs = [o for o in buys if o.iceberg]
                _execute(icebergs, budget, peak_w=self.peak_w, a=a, b=b, buy=True, fills=fills)
            else:
                for o in buys:
                    fills[o.index] += o.quantity
                    o.quantity = 0
                _execute(
                    sells, demand + shave, peak_w=self.peak_w, a=a, b=b, buy=False, fills=fills
                )
            # Waiting limit: an order unfilled for too long gets one clip from the grid.
            for o in buys + sells:
                i = o.index
                if fills[i] > 0:
                    waited[i] = 0
                    continue
                waited[i] += 1
                if o.buy and waited[i] >= wait_limit:
                    fills[i] += min(o.quantity, self.peak_w)
                    waited[i] = 0
                requeues[i] += 1 if o.iceberg else 0
            for i in live:
                rates[i, t] = fills[i]
                remaining[i] -= fills[i]
        return to_schedule(self.name, rates)
