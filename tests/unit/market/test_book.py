"""The matching rules of one order book, on the in-memory book (market/book.py).

Why each test exists: every rule of docs/markets.md is something a participant relies on to
know who trades with whom and at what price.  A rule that silently changed (a refill that kept
its place, a trade at the incoming price, a self-trade) would move money between neighbours.
The chain runs the same ``match`` on its state-backed book; tests/unit/market/
test_orders_properties.py checks that both books give the same trades.
"""

from __future__ import annotations

import pytest

from gridchain.market.book import (
    BUY,
    SELL,
    BookOrder,
    MatchResult,
    MemoryBook,
    Rules,
    adbev_priority,
    best_price,
    match,
)

ALICE, BOB, CAROL, DAVE = (bytes([i]) * 20 for i in range(1, 5))
PRICE_TIME = Rules()
ADBEV = Rules(ranking="adbev")


class Desk:
    """A book and a counter of order ids: ``place`` returns the match result."""

    def __init__(self, rules: Rules = PRICE_TIME) -> None:
        self.book = MemoryBook()
        self.rules = rules
        self.orders: dict[str, BookOrder] = {}
        self.last = MatchResult([], 0, False, rules.iceberg)
        self._n = 0

    def place(
        self, name: str, owner: bytes, side: int, price: int, quantity: int, *, peak: int = 0
    ) -> list[tuple[str, int, int]]:
        """Place an order; return its fills as (maker name, quantity, price)."""
        self._n += 1
        order = BookOrder(self._n.to_bytes(32, "big"), owner, side, price, quantity, quantity, peak)
        self.orders[name] = order
        result = match(self.book, order, self.rules)
        self.last = result
        names = {o.order_id: n for n, o in self.orders.items()}
        return [(names[f.maker], f.quantity_wh, f.price_mc_per_kwh) for f in result.fills]

    def levels(self, side: int) -> list[tuple[int, int, int]]:
        return self.book.levels(side)


# --- price-time priority ---------------------------------------------------------------------


def test_better_price_trades_first_at_the_resting_price() -> None:
    desk = Desk()
    desk.place("dear", ALICE, SELL, 130_000, 500)
    desk.place("cheap", BOB, SELL, 120_000, 500)
    fills = desk.place("buy", CAROL, BUY, 135_000, 800)
    assert fills == [("cheap", 500, 120_000), ("dear", 300, 130_000)]
    assert desk.levels(SELL) == [(130_000, 200, 1)]
    assert desk.levels(BUY) == []


def test_equal_prices_trade_in_time_order() -> None:
    desk = Desk()
    desk.place("first", ALICE, SELL, 120_000, 400)
    desk.place("second", BOB, SELL, 120_000, 400)
    desk.place("third", DAVE, SELL, 120_000, 400)
    assert desk.place("buy", CAROL, BUY, 120_000, 600) == [
        ("first", 400, 120_000),
        ("second", 200, 120_000),
    ]
    assert desk.orders["second"].open_wh == 200  # partly filled, still first in line
    assert desk.place("buy2", CAROL, BUY, 120_000, 300) == [
        ("second", 200, 120_000),
        ("third", 100, 120_000),
    ]


def test_a_sell_takes_the_best_bid_first_and_trades_at_each_bid() -> None:
    desk = Desk()
    desk.place("low", ALICE, BUY, 110_000, 500)
    desk.place("high", BOB, BUY, 125_000, 500)
    assert desk.place("sell", CAROL, SELL, 100_000, 700) == [
        ("high", 500, 125_000),
        ("low", 200, 110_000),
    ]


def test_partial_fill_rests_the_rest_of_the_incoming_order() -> None:
    desk = Desk()
    desk.place("ask", ALICE, SELL, 120_000, 300)
    result_fills = desk.place("bid", BOB, BUY, 125_000, 1000)
    assert result_fills == [("ask", 300, 120_000)]
    assert desk.last.rested
    bid = desk.orders["bid"]
    assert (bid.open_wh, bid.filled_wh, bid.display_wh) == (700, 300, 700)
    assert desk.levels(BUY) == [(125_000, 700, 1)]
    assert desk.levels(SELL) == []


def test_no_trade_when_the_book_does_not_cross() -> None:
    desk = Desk()
    desk.place("bid", ALICE, BUY, 119_999, 500)
    assert desk.place("ask", BOB, SELL, 120_000, 500) == []
    assert desk.levels(BUY) == [(119_999, 500, 1)]
    assert desk.levels(SELL) == [(120_000, 500, 1)]
    assert best_price(desk.book, BUY) == 119_999
    assert best_price(desk.book, SELL) == 120_000


def test_a_tie_in_one_block_goes_to_the_earlier_transaction() -> None:
    """Two orders at one price in the same block: the sequence number (tx order) decides."""
    desk = Desk()
    desk.place("tx0", ALICE, BUY, 120_000, 100)
    desk.place("tx1", BOB, BUY, 120_000, 100)
    assert desk.orders["tx0"].seq < desk.orders["tx1"].seq
    assert desk.place("sell", CAROL, SELL, 120_000, 100) == [("tx0", 100, 120_000)]


# --- iceberg orders --------------------------------------------------------------------------


def test_an_iceberg_shows_only_its_clip() -> None:
    desk = Desk()
    desk.place("ice", ALICE, SELL, 120_000, 2000, peak=500)
    ice = desk.orders["ice"]
    assert (ice.display_wh, ice.hidden_wh) == (500, 1500)
    assert desk.levels(SELL) == [(120_000, 500, 1)]


def test_iceberg_refill_joins_the_tail_and_loses_time_priority() -> None:
    desk = Desk()
    desk.place("ice", ALICE, SELL, 120_000, 900, peak=300)
    desk.place("plain", BOB, SELL, 120_000, 300)
    # The first buyer takes exactly the visible clip; the refill goes behind "plain".
    assert desk.place("b1", CAROL, BUY, 120_000, 300) == [("ice", 300, 120_000)]
    assert desk.orders["ice"].seq > desk.orders["plain"].seq
    assert desk.place("b2", DAVE, BUY, 120_000, 300) == [("plain", 300, 120_000)]
    assert desk.place("b3", DAVE, BUY, 120_000, 300) == [("ice", 300, 120_000)]


def test_hidden_volume_trades_before_the_next_price_level() -> None:
    """The documented rule: an incoming order keeps matching an iceberg's refills at its
    price (behind the orders already waiting there) before it moves to a worse price."""
    desk = Desk()
    desk.place("ice", ALICE, SELL, 100_000, 900, peak=300)
    desk.place("same", BOB, SELL, 100_000, 200)
    desk.place("worse", BOB, SELL, 101_000, 500)
    assert desk.place("buy", CAROL, BUY, 101_000, 1200) == [
        ("ice", 300, 100_000),
        ("same", 200, 100_000),
        ("ice", 300, 100_000),
        ("ice", 300, 100_000),
        ("worse", 100, 101_000),
    ]


def test_an_incoming_iceberg_trades_its_whole_quantity_then_rests_a_clip() -> None:
    desk = Desk()
    desk.place("ask", ALICE, SELL, 100_000, 700)
    assert desk.place("ice", BOB, BUY, 100_000, 1000, peak=200) == [("ask", 700, 100_000)]
    ice = desk.orders["ice"]
    assert (ice.open_wh, ice.display_wh, ice.filled_wh) == (300, 200, 700)
    assert desk.levels(BUY) == [(100_000, 200, 1)]


def test_aggressive_execution_keeps_the_icebergs_time_priority() -> None:
    desk = Desk(Rules(iceberg="aggressive"))
    desk.place("ice", ALICE, SELL, 120_000, 900, peak=300)
    desk.place("plain", BOB, SELL, 120_000, 300)
    assert desk.place("b1", CAROL, BUY, 120_000, 600) == [
        ("ice", 300, 120_000),
        ("ice", 300, 120_000),
    ]
    assert desk.orders["ice"].seq < desk.orders["plain"].seq


def test_passive_execution_trades_hidden_volume_after_everything_else() -> None:
    desk = Desk(Rules(iceberg="passive"))
    desk.place("ice", ALICE, SELL, 120_000, 900, peak=300)
    desk.place("worse", BOB, SELL, 121_000, 1000)
    assert desk.place("b1", CAROL, BUY, 121_000, 600) == [
        ("ice", 300, 120_000),
        ("worse", 300, 121_000),  # a worse price first: the next clip is held back
    ]
    ice = desk.orders["ice"]
    assert (ice.display_wh, ice.open_wh) == (300, 600)  # shown after the incoming order
    assert desk.place("b2", CAROL, BUY, 121_000, 300) == [("ice", 300, 120_000)]


def test_passive_execution_still_leaves_no_crossed_book() -> None:
    """With nothing else to trade, the held-back clip trades with the same incoming order
    rather than rest beside it crossed."""
    desk = Desk(Rules(iceberg="passive"))
    desk.place("ice", ALICE, SELL, 120_000, 900, peak=300)
    desk.place("plain", BOB, SELL, 120_000, 100)
    assert desk.place("b1", CAROL, BUY, 120_000, 700) == [
        ("ice", 300, 120_000),
        ("plain", 100, 120_000),
        ("ice", 300, 120_000),
    ]
    assert desk.levels(BUY) == []
    assert desk.levels(SELL) == [(120_000, 300, 1)]


def test_passive_execution_cuts_an_own_order_once_across_rounds() -> None:
    desk = Desk(Rules(iceberg="passive"))
    desk.place("ice", ALICE, SELL, 120_000, 900, peak=300)
    desk.place("own", CAROL, SELL, 120_000, 100)
    assert desk.place("b1", CAROL, BUY, 120_000, 1000) == [
        ("ice", 300, 120_000),
        ("ice", 300, 120_000),
        ("ice", 300, 120_000),
    ]
    bid = desk.orders["b1"]
    assert (bid.filled_wh, bid.cancelled_wh, bid.open_wh) == (900, 100, 0)


def test_adaptive_execution_follows_the_balance_of_the_book() -> None:
    """AdBEV Table 4-B: aggressive while demand exceeds supply, passive otherwise."""
    short = Desk(Rules(iceberg="adaptive"))
    short.place("ice", ALICE, SELL, 120_000, 900, peak=300)
    short.place("waiting-bid", BOB, BUY, 100_000, 5000)  # demand 5000 > supply 900
    short.place("plain", DAVE, SELL, 120_000, 300)
    assert short.place("b1", CAROL, BUY, 120_000, 600) == [
        ("ice", 300, 120_000),
        ("ice", 300, 120_000),
    ]
    assert short.last.iceberg == "aggressive"

    long = Desk(Rules(iceberg="adaptive"))
    long.place("ice", ALICE, SELL, 120_000, 900, peak=300)
    long.place("plain", DAVE, SELL, 120_000, 300)  # supply 1200 >= demand 600
    assert long.place("b1", CAROL, BUY, 120_000, 600) == [
        ("ice", 300, 120_000),
        ("plain", 300, 120_000),
    ]
    assert long.last.iceberg == "passive"


# --- self-trade prevention -------------------------------------------------------------------


def test_no_self_trade_the_incoming_overlap_is_cancelled() -> None:
    desk = Desk()
    desk.place("own-ask", ALICE, SELL, 100_000, 300)
    desk.place("other-ask", BOB, SELL, 101_000, 500)
    fills = desk.place("own-bid", ALICE, BUY, 102_000, 1000)
    assert fills == [("other-ask", 500, 101_000)]
    assert (desk.last.self_trade_wh, desk.last.rested) == (500, False)
    bid = desk.orders["own-bid"]
    # 300 would have met Alice's own ask: cancelled; the last 200 would rest crossing it: too.
    assert (bid.filled_wh, bid.cancelled_wh, bid.open_wh) == (500, 500, 0)
    own_ask = desk.orders["own-ask"]
    assert (own_ask.open_wh, own_ask.filled_wh) == (300, 0)
    assert desk.levels(BUY) == []
    assert desk.levels(SELL) == [(100_000, 300, 1)]


def test_self_trade_prevention_counts_an_own_icebergs_hidden_volume() -> None:
    """The overlap is what would have traded with the own order: with hidden volume trading
    before the next order, that is the iceberg's whole open quantity."""
    desk = Desk()
    desk.place("own-ice", ALICE, SELL, 100_000, 1000, peak=200)
    desk.place("other", BOB, SELL, 100_000, 400)
    assert desk.place("own-bid", ALICE, BUY, 100_000, 1200) == [("other", 200, 100_000)]
    bid = desk.orders["own-bid"]
    assert (bid.filled_wh, bid.cancelled_wh, bid.open_wh) == (200, 1000, 0)
    assert desk.orders["own-ice"].open_wh == 1000


# --- AdBEV ranking ---------------------------------------------------------------------------


def _adbev_book(rules: Rules) -> Desk:
    """An old ask at 101, ten asks at 105 that no buyer below 105 reaches, a young ask at 100.

    Price ranks: 100 -> 1, 101 -> 2, 105 -> 3; time ranks: old 1, the 105s 2..11, young 12.
    With a = 10, b = 1: f(old) = 21, f(young) = 22.
    """
    desk = Desk(rules)
    desk.place("old", ALICE, SELL, 101_000, 100)
    for i in range(10):
        desk.place(f"far{i}", DAVE, SELL, 105_000, 100)
    desk.place("young", BOB, SELL, 100_000, 100)
    return desk


def test_adbev_lets_a_much_older_order_overtake_a_slightly_better_price() -> None:
    desk = _adbev_book(ADBEV)
    fills = desk.place("buy", CAROL, BUY, 101_000, 100)
    assert fills == [("old", 100, 101_000)]  # at the resting order's own price
    assert desk.orders["young"].open_wh == 100


def test_strict_price_time_never_lets_age_beat_price() -> None:
    desk = _adbev_book(PRICE_TIME)
    assert desk.place("buy", CAROL, BUY, 101_000, 100) == [("young", 100, 100_000)]


def test_adbev_ranks_again_before_every_fill() -> None:
    """Ranks are those of the book as it stands: once "old" has traded, "young" is first."""
    desk = _adbev_book(ADBEV)
    assert desk.place("buy", CAROL, BUY, 101_000, 200) == [
        ("old", 100, 101_000),
        ("young", 100, 100_000),
    ]


def test_adbev_a_small_price_gap_loses_to_a_small_age_gap() -> None:
    """With fewer than a/b = 10 orders between them in time, price decides as usual."""
    desk = Desk(ADBEV)
    desk.place("old", ALICE, SELL, 101_000, 100)
    desk.place("young", BOB, SELL, 100_000, 100)  # f(old) = 21, f(young) = 12
    assert desk.place("buy", CAROL, BUY, 101_000, 100) == [("young", 100, 100_000)]


def test_adbev_equal_f_goes_to_the_older_order() -> None:
    desk = Desk(ADBEV)
    desk.place("old", ALICE, SELL, 101_000, 100)
    for i in range(9):
        desk.place(f"far{i}", DAVE, SELL, 105_000, 100)
    desk.place("young", BOB, SELL, 100_000, 100)  # f(old) = 21 = f(young) = 10 + 11
    assert desk.place("buy", CAROL, BUY, 101_000, 100) == [("old", 100, 101_000)]


def test_adbev_ranks_only_crossing_orders_as_eligible() -> None:
    desk = _adbev_book(ADBEV)
    fills = desk.place("buy", CAROL, BUY, 100_000, 300)  # "old" at 101 does not cross 100
    assert fills == [("young", 100, 100_000)]
    assert desk.orders["buy"].open_wh == 200


def test_adbev_priority_uses_dense_price_ranks_and_time_ranks() -> None:
    asks = [
        BookOrder(bytes([i]) * 32, ALICE, SELL, price, 1, 1, 0, seq=seq)
        for i, (price, seq) in enumerate([(100, 5), (100, 9), (105, 1), (200, 2)])
    ]
    # price ranks 1, 1, 2, 3; time ranks 3, 4, 1, 2 -> f = 13, 14, 21, 32
    ranked = adbev_priority(asks, SELL, ADBEV)
    assert [o.seq for o in ranked] == [5, 9, 1, 2]
    heavy_time = adbev_priority(asks, SELL, Rules(ranking="adbev", price_weight=1, time_weight=10))
    assert [o.seq for o in heavy_time] == [1, 2, 5, 9]  # f = 31, 41, 12, 23 -> 12, 23, 31, 41


@pytest.mark.parametrize("rules", [PRICE_TIME, ADBEV], ids=["price_time", "adbev"])
def test_after_matching_the_best_bid_is_below_the_best_ask(rules: Rules) -> None:
    desk = Desk(rules)
    for i, (side, price) in enumerate([(BUY, 100), (SELL, 110), (BUY, 105), (SELL, 104)]):
        desk.place(f"o{i}", (ALICE, BOB)[i % 2], side, price, 50 + 10 * i)
        bid, ask = best_price(desk.book, BUY), best_price(desk.book, SELL)
        assert bid is None or ask is None or bid < ask
