"""The real-time pool's SDR prices and sharing (market/pool.py), on its own.

Why: the pool settles every participant's imbalance, so its prices must sit between the grid's
feed-in tariff and retail price (nobody does worse than trading with the grid), must not jump
where the formula changes regime (SDR = 0, SDR = 1: a kWh more or less must not swing the
price), and must balance the books: what buyers pay covers what sellers and the grid receive,
to within the integer rounding the module documents, never the other way round.
"""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridchain.market.pool import (
    PoolInputError,
    Position,
    clear_pool,
    pro_rata,
    sdr_prices,
)

TARIFFS = st.tuples(st.integers(0, 10**6), st.integers(0, 10**6)).map(
    lambda t: (max(t), min(t))  # (r_buy, r_sell) with r_sell <= r_buy
)
ENERGY = st.integers(0, 10**9)


def exact_p_sell(tsp: int, tbp: int, r_buy: int, r_sell: int) -> Fraction:
    sdr = Fraction(tsp, tbp)
    return Fraction(r_buy * r_sell) / ((r_buy - r_sell) * sdr + r_sell)


def test_the_designs_example_numbers() -> None:
    # r_buy 250, r_sell 60 credits/kWh; half of the demand is met inside the community
    prices = sdr_prices(500, 1000, 250_000, 60_000)
    assert prices.sdr == Fraction(1, 2)
    # p_sell = 250*60 / (190*0.5 + 60) = 96.774..; p_buy = 96.774*0.5 + 250*0.5 = 173.387..
    assert prices.p_sell_mc_per_kwh == 96_774
    assert prices.p_buy_mc_per_kwh == 173_387


def test_the_regimes() -> None:
    assert sdr_prices(0, 1000, 250_000, 60_000).p_sell_mc_per_kwh == 250_000  # SDR 0
    at_one = sdr_prices(1000, 1000, 250_000, 60_000)
    assert (at_one.p_sell_mc_per_kwh, at_one.p_buy_mc_per_kwh) == (60_000, 60_000)
    surplus = sdr_prices(3000, 1000, 250_000, 60_000)
    assert (surplus.p_sell_mc_per_kwh, surplus.p_buy_mc_per_kwh) == (60_000, 60_000)
    nobody_buys = sdr_prices(3000, 0, 250_000, 60_000)
    assert nobody_buys.sdr is None
    assert (nobody_buys.p_sell_mc_per_kwh, nobody_buys.p_buy_mc_per_kwh) == (60_000, 60_000)


def test_a_zero_feed_in_tariff_has_no_division_by_zero() -> None:
    prices = sdr_prices(0, 1000, 250_000, 0)
    assert (prices.p_sell_mc_per_kwh, prices.p_buy_mc_per_kwh) == (0, 250_000)
    assert sdr_prices(10, 1000, 250_000, 0).p_sell_mc_per_kwh == 0


@settings(max_examples=300, deadline=None)
@given(tariffs=TARIFFS, tsp=ENERGY, tbp=ENERGY)
def test_prices_lie_between_feed_in_and_retail(
    tariffs: tuple[int, int], tsp: int, tbp: int
) -> None:
    r_buy, r_sell = tariffs
    prices = sdr_prices(tsp, tbp, r_buy, r_sell)
    assert r_sell <= prices.p_sell_mc_per_kwh <= prices.p_buy_mc_per_kwh <= r_buy


@settings(max_examples=300, deadline=None)
@given(tariffs=TARIFFS, tsp=ENERGY, tbp=st.integers(1, 10**9))
def test_budget_balance_within_the_documented_rounding(
    tariffs: tuple[int, int], tsp: int, tbp: int
) -> None:
    """TBP*p_buy = TSP*p_sell + (TBP-TSP)*r_buy for SDR <= 1; integer prices overshoot by
    less than TBP (p_buy rounded up, p_sell down): the pool never pays out more."""
    r_buy, r_sell = tariffs
    tsp = min(tsp, tbp)
    p = sdr_prices(tsp, tbp, r_buy, r_sell)
    surplus = tbp * p.p_buy_mc_per_kwh - (tsp * p.p_sell_mc_per_kwh + (tbp - tsp) * r_buy)
    assert 0 <= surplus < tbp
    # and p_sell is the formula rounded down (never more than 1 mc/kWh below it)
    if tsp > 0 and r_sell > 0:
        exact = exact_p_sell(tsp, tbp, r_buy, r_sell)
        assert 0 <= exact - p.p_sell_mc_per_kwh < 1


@settings(max_examples=200, deadline=None)
@given(tariffs=TARIFFS, tbp=st.integers(1, 10**6))
def test_continuity_at_sdr_one(tariffs: tuple[int, int], tbp: int) -> None:
    """Just below SDR = 1 the prices are within rounding of the SDR >= 1 price r_sell."""
    r_buy, r_sell = tariffs
    big = tbp * 10**6  # SDR = 1 - 1/big
    below = sdr_prices(big - 1, big, r_buy, r_sell)
    at = sdr_prices(big, big, r_buy, r_sell)
    above = sdr_prices(big + 1, big, r_buy, r_sell)
    assert at.p_sell_mc_per_kwh == above.p_sell_mc_per_kwh == r_sell
    assert at.p_buy_mc_per_kwh == above.p_buy_mc_per_kwh == r_sell
    assert below.p_sell_mc_per_kwh - r_sell <= 1
    assert below.p_buy_mc_per_kwh - r_sell <= 1


@settings(max_examples=200, deadline=None)
@given(tariffs=TARIFFS.filter(lambda t: t[1] > 0))
def test_continuity_at_sdr_zero(tariffs: tuple[int, int]) -> None:
    """A sliver of supply moves the prices from r_buy by at most rounding."""
    r_buy, r_sell = tariffs
    big = 10**15  # SDR = 1e-15: far below anything the tariffs can resolve
    at = sdr_prices(0, big, r_buy, r_sell)
    sliver = sdr_prices(1, big, r_buy, r_sell)
    assert at.p_sell_mc_per_kwh == at.p_buy_mc_per_kwh == r_buy
    assert r_buy - sliver.p_sell_mc_per_kwh <= 1
    assert r_buy - sliver.p_buy_mc_per_kwh <= 1


@settings(max_examples=200, deadline=None)
@given(tariffs=TARIFFS, tbp=st.integers(1, 10**6), tsp=st.integers(0, 10**6))
def test_prices_move_monotonically_with_sdr(tariffs: tuple[int, int], tbp: int, tsp: int) -> None:
    """More supply for the same demand never raises a price (the curve has no jumps back)."""
    r_buy, r_sell = tariffs
    lower = sdr_prices(tsp, tbp, r_buy, r_sell)
    higher = sdr_prices(tsp + 1, tbp, r_buy, r_sell)
    assert higher.p_sell_mc_per_kwh <= lower.p_sell_mc_per_kwh
    assert higher.p_buy_mc_per_kwh <= lower.p_buy_mc_per_kwh


positions = st.lists(st.integers(-(10**7), 10**7), max_size=12).map(
    lambda nets: [Position(bytes([i]) * 20, n) for i, n in enumerate(nets)]
)


@settings(max_examples=300, deadline=None)
@given(tariffs=TARIFFS, book=positions)
def test_clearing_shares_energy_exactly_and_the_pool_never_loses(
    tariffs: tuple[int, int], book: list[Position]
) -> None:
    r_buy, r_sell = tariffs
    result = clear_pool(book, r_buy, r_sell)
    tsp = sum(max(p.net_wh, 0) for p in book)
    tbp = sum(max(-p.net_wh, 0) for p in book)
    internal = min(tsp, tbp)
    sellers = [s for s in result.shares if s.net_wh > 0]
    buyers = [s for s in result.shares if s.net_wh < 0]
    assert sum(s.internal_wh for s in sellers) == internal
    assert sum(s.internal_wh for s in buyers) == internal
    for share in result.shares:
        assert share.internal_wh + share.grid_wh == abs(share.net_wh)
    assert sum(s.grid_wh for s in buyers) == result.grid_import_wh == max(tbp - tsp, 0)
    assert sum(s.grid_wh for s in sellers) == result.grid_export_wh == max(tsp - tbp, 0)
    # Money: buyers pay, sellers are paid, the grid leg balances the rest; the pool keeps
    # only rounding, never a deficit.
    collected = -sum(s.amount_mc for s in buyers)
    paid = sum(s.amount_mc for s in sellers)
    assert collected - paid - result.grid_mc == result.residual_mc
    assert 0 <= result.residual_mc < tbp // 1000 + len(book) + 2
    for s in sellers:
        assert s.amount_mc >= s.net_wh * r_sell // 1000  # never worse than feed-in
    for s in buyers:
        demand = -s.net_wh
        assert -s.amount_mc <= (demand * r_buy + 999) // 1000  # never worse than retail


def test_pro_rata_gives_the_leftover_units_to_the_largest_remainders() -> None:
    assert pro_rata(10, [1, 1, 1]) == [4, 3, 3]  # ties go to the earlier weight
    assert pro_rata(10, [2, 1, 1]) == [5, 3, 2]
    assert pro_rata(7, [0, 5, 0]) == [0, 7, 0]
    assert pro_rata(0, [0, 0]) == [0, 0]
    with pytest.raises(PoolInputError):
        pro_rata(1, [0, 0])


def test_bad_input_is_a_typed_error() -> None:
    with pytest.raises(PoolInputError):
        sdr_prices(1, 1, 50_000, 60_000)  # feed-in above retail
    with pytest.raises(PoolInputError):
        sdr_prices(-1, 1, 250_000, 60_000)
    twice = [Position(b"a" * 20, 5), Position(b"a" * 20, -5)]
    with pytest.raises(PoolInputError):
        clear_pool(twice, 250_000, 60_000)
