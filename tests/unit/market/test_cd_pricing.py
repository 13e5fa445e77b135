"""The C&D price's count of allowed intervals is the interval-by-interval count (ADR 0030).

``CDPrices.usable`` counts a window an hour's run of intervals at a time; these properties hold
it to the definition, one interval at a time, on clocks whose genesis is not on the hour and
whose intervals do not divide an hour (or are longer than one).
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gridchain.genesis.schema import ChainParams
from gridchain.market.cd_pricing import HOUR_MS, CDPrices
from gridchain.market.cd_requests import IntervalClock

#: the genesis defaults: 180,000 mc/kWh 0-7 h, 250,000 7-17 h, 350,000 17-21 h, 250,000 21-24 h
TARIFFS = ChainParams().tariffs


def _one_by_one(prices: CDPrices, is_charge: bool, limit: int, first: int, end: int) -> int:
    return sum(1 for j in range(first, end) if prices.allows(is_charge, limit, j))


@given(
    genesis_time_ms=st.integers(0, 3 * 24 * HOUR_MS),
    interval_ms=st.sampled_from([1_000, 2_000, 7_000, 60_000, 420_000, 900_000, 5_400_000])
    | st.integers(1, 3 * HOUR_MS),
    first=st.integers(0, 2_000),
    length=st.integers(0, 3_000),
    is_charge=st.booleans(),
    limit=st.sampled_from([0, 179_999, 180_000, 250_000, 300_000, 350_000, 400_000]),
)
def test_usable_counts_what_allows_allows(
    *,
    genesis_time_ms: int,
    interval_ms: int,
    first: int,
    length: int,
    is_charge: bool,
    limit: int,
) -> None:
    clock = IntervalClock(genesis_time_ms, interval_ms, max(1, interval_ms // 60_000))
    prices = CDPrices(clock, TARIFFS)
    end = first + length
    assert prices.usable(is_charge, limit, first, end) == _one_by_one(
        prices, is_charge, limit, first, end
    )


def test_an_empty_or_reversed_window_allows_nothing() -> None:
    prices = CDPrices(IntervalClock(0, 900_000, 15), TARIFFS)
    assert prices.usable(True, 400_000, 10, 10) == 0
    assert prices.usable(True, 400_000, 10, 5) == 0


def test_a_day_of_quarter_hours_at_the_default_tariffs() -> None:
    """Worked by hand: a charge limit of 250,000 mc/kWh allows every hour but 17-21 (16 of
    the 96 quarter hours), a discharge limit of 350,000 only those."""
    prices = CDPrices(IntervalClock(0, 900_000, 15), TARIFFS)
    assert prices.usable(True, 250_000, 0, 96) == 80
    assert prices.usable(False, 350_000, 0, 96) == 16
    assert prices.usable(True, 179_999, 0, 96) == 0
