"""The real-time pool: one interval's net positions cleared at prices set by the supply/demand
ratio (DESIGN section 6; seed 002's real-time market), in integers.

Why a pool and not the order book: what the meters show after an interval is what it is; the
imbalance of every participant (energy not covered by contracts) has to clear at once, with
no bidding.  The source prices it by SDR = TSP / TBP (total net supply over total net demand)
between the grid's feed-in tariff r_sell and retail price r_buy:

    0 <= SDR <= 1:  p_sell = r_buy * r_sell / ((r_buy - r_sell) * SDR + r_sell)
                    p_buy  = p_sell * SDR + r_buy * (1 - SDR)
    SDR > 1, or no demand:  p_sell = p_buy = r_sell

With SDR = TSP / TBP substituted, both are ratios of integers:

    p_sell = r_buy * r_sell * TBP // ((r_buy - r_sell) * TSP + r_sell * TBP)    (rounded down)
    p_buy  = ceil((p_sell * TSP + r_buy * (TBP - TSP)) / TBP)                   (rounded up)

Rounding p_sell down and p_buy up keeps r_sell <= p_sell <= p_buy <= r_buy exact (each is a
rounding of a value between two integers that bound it) and means the pool never promises more
than it collects: 0 <= TBP * p_buy - (TSP * p_sell + (TBP - TSP) * r_buy) < TBP.  Where the
formula's denominator is 0 (r_sell = 0 and nobody supplies) p_sell is r_sell, its limit.

Energy: the internal energy min(TSP, TBP) is shared pro rata, by largest remainder so the
shares add up exactly.  When SDR <= 1 every seller's whole supply is internal and each buyer
receives a share of it in proportion to its demand, the rest of its demand coming from the
grid; when SDR > 1 every buyer's whole demand is internal and each seller supplies a share in
proportion to its supply, the rest going to the grid.

Money: buyers pay ceil(d * p_buy / 1000) mc, sellers receive floor(s * p_sell / 1000), the
grid is paid floor((TBP - TSP) * r_buy / 1000) for imports and pays ceil((TSP - TBP) * r_sell
/ 1000) for exports.  Every leg is rounded in the pool's favour by less than 1 mc, so
the pool's residual (what it keeps) is never negative and, by the bound above, is below
TBP / 1000 + the number of legs, in mc.

It is a pure function of the positions and the tariffs: the meter issue feeds it metered
imbalances; nothing here reads the state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from gridchain.protocol.errors import GridchainError


class PoolInputError(GridchainError):
    """Positions or tariffs the pool cannot clear (a duplicate participant, r_sell > r_buy)."""

    code = "invalid_pool_input"
    http_status = 422


@dataclass(frozen=True, slots=True)
class Position:
    """A participant's net energy in the interval: > 0 supplies (exports), < 0 demands."""

    participant: bytes
    net_wh: int


@dataclass(frozen=True, slots=True)
class Share:
    """What the pool did with one participant's position.

    ``internal_wh`` was traded inside the community, ``grid_wh`` with the grid (both >= 0, in
    the direction of ``net_wh``); ``amount_mc`` > 0 is paid to the participant, < 0 by it.
    """

    participant: bytes
    net_wh: int
    internal_wh: int
    grid_wh: int
    amount_mc: int


@dataclass(frozen=True, slots=True)
class PoolPrices:
    """The SDR prices of an interval; SDR itself is the exact ratio tsp_wh / tbp_wh."""

    tsp_wh: int
    tbp_wh: int
    r_buy_mc_per_kwh: int
    r_sell_mc_per_kwh: int
    p_sell_mc_per_kwh: int
    p_buy_mc_per_kwh: int

    @property
    def sdr(self) -> Fraction | None:
        """TSP / TBP, or None when there is no demand (the ratio is unbounded)."""
        return None if self.tbp_wh == 0 else Fraction(self.tsp_wh, self.tbp_wh)


@dataclass(frozen=True, slots=True)
class PoolClearing:
    prices: PoolPrices
    shares: tuple[Share, ...]
    grid_import_wh: int
    grid_export_wh: int
    #: What the pool pays the grid for imports (> 0) or receives for exports (< 0 paid).
    grid_mc: int
    #: What the pool keeps from rounding: collected - paid out; always >= 0.
    residual_mc: int


def _ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


def _check_tariffs(r_buy: int, r_sell: int) -> None:
    if r_sell < 0 or r_buy < r_sell:
        raise PoolInputError(
            f"tariffs need 0 <= r_sell <= r_buy, got r_sell={r_sell}, r_buy={r_buy}"
        )


def sdr_prices(tsp_wh: int, tbp_wh: int, r_buy: int, r_sell: int) -> PoolPrices:
    """The pool prices (mc/kWh) for total supply ``tsp_wh`` and total demand ``tbp_wh``."""
    _check_tariffs(r_buy, r_sell)
    if tsp_wh < 0 or tbp_wh < 0:
        raise PoolInputError("total supply and demand are not negative")
    if tbp_wh == 0 or tsp_wh >= tbp_wh:
        p_sell = p_buy = r_sell
    else:
        denominator = (r_buy - r_sell) * tsp_wh + r_sell * tbp_wh
        p_sell = r_sell if denominator == 0 else r_buy * r_sell * tbp_wh // denominator
        numerator = p_sell * tsp_wh + r_buy * (tbp_wh - tsp_wh)
        p_buy = _ceil_div(numerator, tbp_wh)
    return PoolPrices(tsp_wh, tbp_wh, r_buy, r_sell, p_sell, p_buy)


def pro_rata(total: int, weights: Sequence[int]) -> list[int]:
    """Split ``total`` in proportion to ``weights`` (all >= 0) into integers that add up to it.

    Each share is floor(total * w / W); the units left over go one each to the largest
    remainders, ties to the earlier weight.  With sum(weights) == 0 every share is 0 (and
    ``total`` must be 0).
    """
    whole = sum(weights)
    if whole == 0:
        if total:
            raise PoolInputError("nothing to share a non-zero total among")
        return [0] * len(weights)
    shares = [total * w // whole for w in weights]
    left = total - sum(shares)
    order = sorted(range(len(weights)), key=lambda i: (-(total * weights[i] % whole), i))
    for i in order[:left]:
        shares[i] += 1
    return shares


def clear_pool(positions: Sequence[Position], r_buy: int, r_sell: int) -> PoolClearing:
    """Clear one interval's net positions in the pool (see the module text for the rules)."""
    _check_tariffs(r_buy, r_sell)
    seen: set[bytes] = set()
    for p in positions:
        if p.participant in seen:
            raise PoolInputError(f"participant {p.participant.hex()} has two positions")
        seen.add(p.participant)
    supply = [max(p.net_wh, 0) for p in positions]
    demand = [max(-p.net_wh, 0) for p in positions]
    tsp, tbp = sum(supply), sum(demand)
    prices = sdr_prices(tsp, tbp, r_buy, r_sell)
    internal = min(tsp, tbp)
    supply_internal = pro_rata(internal, supply)
    demand_internal = pro_rata(internal, demand)
    shares: list[Share] = []
    collected = 0
    paid = 0
    for i, p in enumerate(positions):
        if p.net_wh > 0:
            amount = p.net_wh * prices.p_sell_mc_per_kwh // 1000
            paid += amount
            shares.append(
                Share(
                    p.participant,
                    p.net_wh,
                    supply_internal[i],
                    p.net_wh - supply_internal[i],
                    amount,
                )
            )
        elif p.net_wh < 0:
            amount = _ceil_div(-p.net_wh * prices.p_buy_mc_per_kwh, 1000)
            collected += amount
            shares.append(
                Share(
                    p.participant,
                    p.net_wh,
                    demand_internal[i],
                    -p.net_wh - demand_internal[i],
                    -amount,
                )
            )
        else:
            shares.append(Share(p.participant, 0, 0, 0, 0))
    grid_import = max(tbp - tsp, 0)
    grid_export = max(tsp - tbp, 0)
    grid_mc = grid_import * r_buy // 1000 - _ceil_div(grid_export * r_sell, 1000)
    residual = collected - paid - grid_mc
    return PoolClearing(prices, tuple(shares), grid_import, grid_export, grid_mc, residual)
