"""From market slots to the LP's inputs: per-slot forecasts, prices and the EV's window.

A plan's slots are the market's (genesis ``slot_length_ms``: 15 minutes as in the source, or
seconds on an accelerated testnet); forecasts are per history interval of the UTC day, so a
slot takes the forecast of the interval its start falls in.  Prices are the chain's
time-of-use tariffs of each slot (``GET /v1/pool/prices``: retail to buy, feed-in to sell),
with the sell price raised towards the market's recent clearing prices when there are any: a
kWh the house can sell to a neighbour is worth what neighbours paid lately, never less than
the feed-in tariff nor more than retail.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gridchain.agent.config import EVConfig
from gridchain.agent.plan import EV

FloatArray = npt.NDArray[np.float64]
DAY_MS = 86_400_000
HOUR_MS = 3_600_000


def slot_values(
    days: FloatArray, first_day: int, interval_ms: int, slot_starts: Sequence[int]
) -> FloatArray:
    """The value of each slot: the forecast interval its start falls in (days from first_day)."""
    out = np.zeros(len(slot_starts))
    for i, start in enumerate(slot_starts):
        d = start // DAY_MS - first_day
        if not 0 <= d < len(days):
            raise ValueError(f"slot starting {start} is outside the forecast days")
        out[i] = days[d, (start % DAY_MS) // interval_ms]
    return out


@dataclass(frozen=True, slots=True)
class SlotPrices:
    buy: FloatArray
    sell: FloatArray
    retail: FloatArray
    feed_in: FloatArray


def slot_prices(
    retail: Sequence[int], feed_in: Sequence[int], recent_trade_prices: Sequence[int]
) -> SlotPrices:
    """Buy at retail; sell at the recent market median clamped to [feed-in, retail]."""
    r = np.asarray(retail, dtype=np.float64)
    f = np.asarray(feed_in, dtype=np.float64)
    if recent_trade_prices:
        median = float(statistics.median(recent_trade_prices))
        sell = np.clip(np.full_like(r, median), f, r)
    else:
        sell = f.copy()
    return SlotPrices(buy=r, sell=sell, retail=r, feed_in=f)


def in_window(hour: float, start: int, end: int) -> bool:
    """Whether an hour of day lies in [start, end), a window that may wrap midnight."""
    if start == end:
        return True
    if start < end:
        return start <= hour < end
    return hour >= start or hour < end


def ev_for(config: EVConfig, slot_starts: Sequence[int], slot_length_ms: int) -> tuple[EV, int]:
    """The EV of this horizon and the deadline (ms) of its goal.

    The goal "goal_kwh by by_hour" refers to the first by_hour (UTC) after the horizon starts;
    a deadline beyond the horizon is not planned in this horizon (a later plan covers it).
    """
    start = slot_starts[0]
    deadline = (start // DAY_MS) * DAY_MS + config.by_hour * HOUR_MS
    if deadline <= start:
        deadline += DAY_MS
    available = tuple(
        in_window((s % DAY_MS) / HOUR_MS, config.plugged_from_hour, config.plugged_until_hour)
        for s in slot_starts
    )
    horizon_end = slot_starts[-1] + slot_length_ms
    deadline_slot = sum(1 for s in slot_starts if s + slot_length_ms <= deadline)
    ev = EV(
        capacity_kwh=config.capacity_kwh,
        soe0_kwh=config.soe0_kwh,
        max_charge_kw=config.max_charge_kw,
        max_discharge_kw=config.max_discharge_kw,
        efficiency=config.efficiency,
        goal_kwh=config.goal_kwh if deadline <= horizon_end else 0.0,
        deadline_slot=deadline_slot,
        available=available,
        v2g=config.v2g,
    )
    return ev, deadline
