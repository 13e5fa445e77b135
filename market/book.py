"""The matching engine of one order book (one market, one delivery slot): pure and deterministic.

Why it is written against an abstract :class:`Book`: the same walk must run on the chain (where
the book lives in the Merkle state and every validator executes it) and in memory (unit tests,
property tests and the throughput benchmark).  One implementation of the rules, two storages,
so what the tests and the benchmark measure is what the validators execute.

The rules (docs/markets.md says them for people):

* An incoming order is matched immediately against the resting orders of the other side in
  priority order; every trade executes at the **resting** order's price; what is left of the
  incoming order rests (partial fills are normal).
* Priority is strict price-time by default: better price first, then earlier sequence number.
  With the AdBEV option, resting orders are ranked by f = a*Rank(price) + b*Rank(time) (lower
  first, ties by sequence), so an order much older than a slightly better one can go first.
  Only resting orders that cross the incoming limit are eligible either way.
* Iceberg orders show at most ``peak_wh``; only the displayed clip trades against an incoming
  order at a time.  When a clip is exhausted and hidden volume remains, a new clip of
  min(peak, hidden) is shown according to the iceberg execution option:

  - ``standard``: the new clip joins the **tail** of its price level (a new sequence number) and
    stays available to the same incoming order, so hidden volume at a price trades before any
    worse price level but after every order that was already waiting at that price;
  - ``aggressive`` (the source's Table 4-B step 3): the new clip is shown in place, keeping the
    iceberg's time priority ("old iceberg retains a higher priority");
  - ``passive`` (step 4, "passively waiting"): the new clip is held back while the incoming
    order trades with every other order it crosses, then joins the tail of its level; only if
    the incoming order still has quantity does it trade with that clip, so an iceberg's hidden
    volume trades after everything else on offer and a book is never left crossed;
  - ``adaptive``: aggressive when the book's open demand (including hidden volume and the
    incoming order) exceeds its open supply, passive otherwise: the source's case split.

* No self-trade: when the walk reaches a resting order of the incoming order's owner, the
  incoming order's quantity that would have traded with it, min(incoming open, resting open),
  is cancelled, the resting order is left alone and the walk goes on.  An incoming order that
  met its owner's order does not rest: its remainder would cross that order, so it is
  cancelled too.  A book is therefore never crossed after an order is processed.

Everything is integer arithmetic; no iteration over an unordered collection decides anything.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from bisect import bisect_left, bisect_right, insort
from dataclasses import dataclass
from typing import NamedTuple

from gridchain.genesis.schema import IcebergExecution, MatchingRule

BUY = 0
SELL = 1


@dataclass(slots=True)
class BookOrder:
    """What matching needs of an order; mutated in place as it trades."""

    order_id: bytes
    owner: bytes
    side: int
    price: int  # mc/kWh
    open_wh: int  # displayed + hidden, not yet traded or cancelled
    display_wh: int  # the visible clip (== open_wh for a normal order)
    peak_wh: int  # 0 for a normal order
    seq: int = 0  # time priority; a new clip at the tail gets a new one
    filled_wh: int = 0
    cancelled_wh: int = 0

    @property
    def hidden_wh(self) -> int:
        return self.open_wh - self.display_wh

    def show_next_clip(self) -> None:
        self.display_wh = min(self.peak_wh, self.open_wh) if self.peak_wh else self.open_wh


class Fill(NamedTuple):
    """One trade: ``quantity_wh`` at the maker's (resting order's) price.

    A named tuple because matching creates one per trade and tuples are the cheapest
    immutable records Python builds.
    """

    maker: bytes
    taker: bytes
    maker_owner: bytes
    taker_owner: bytes
    taker_side: int
    price_mc_per_kwh: int
    quantity_wh: int

    @property
    def buy_order(self) -> bytes:
        return self.taker if self.taker_side == BUY else self.maker

    @property
    def sell_order(self) -> bytes:
        return self.maker if self.taker_side == BUY else self.taker

    @property
    def buyer(self) -> bytes:
        return self.taker_owner if self.taker_side == BUY else self.maker_owner

    @property
    def seller(self) -> bytes:
        return self.maker_owner if self.taker_side == BUY else self.taker_owner


@dataclass(frozen=True, slots=True)
class Rules:
    """The genesis options that change matching (genesis.schema.ChainParams)."""

    ranking: MatchingRule = "price_time"
    iceberg: IcebergExecution = "standard"
    price_weight: int = 10
    time_weight: int = 1


@dataclass(slots=True)
class MatchResult:
    fills: list[Fill]
    #: Quantity of the incoming order cancelled by self-trade prevention.
    self_trade_wh: int
    rested: bool
    #: The iceberg execution that applied ("adaptive" resolves to aggressive or passive).
    iceberg: str


class Book(ABC):
    """Storage of one book's resting orders, in price-time order per side.

    ``first`` returns entries in strict price-time priority (better price, then lower
    sequence); ``after`` is a cursor returned by an earlier ``first`` and means "strictly
    after that entry".  Implementations must return the same order objects for the same
    order within one matching call, so that changes made to them are seen.
    """

    @abstractmethod
    def first(self, side: int, after: object | None) -> tuple[object, BookOrder] | None: ...

    @abstractmethod
    def orders(self, side: int) -> list[BookOrder]:
        """Every resting order of ``side`` (any order; callers sort)."""

    @abstractmethod
    def insert(self, order: BookOrder) -> None:
        """Add a resting order under its (price, seq)."""

    @abstractmethod
    def remove(self, order: BookOrder) -> None:
        """Take a resting order out (its price and seq are still the indexed ones)."""

    @abstractmethod
    def requeue(self, order: BookOrder, seq: int) -> None:
        """Move a resting order to sequence ``seq`` (the tail of its price level)."""

    @abstractmethod
    def changed(self, order: BookOrder) -> None:
        """A resting order's quantities changed; its place in the book did not."""

    @abstractmethod
    def next_seq(self) -> int:
        """A sequence number greater than every one handed out before."""

    def open_totals(self) -> tuple[int, int]:
        """Open (displayed + hidden) quantity resting on the buy and the sell side."""
        return (
            sum(o.open_wh for o in self.orders(BUY)),
            sum(o.open_wh for o in self.orders(SELL)),
        )


def crosses(side: int, limit: int, resting_price: int) -> bool:
    """Whether an order of ``side`` with ``limit`` may trade at ``resting_price``."""
    return resting_price <= limit if side == BUY else resting_price >= limit


def adbev_priority(orders: list[BookOrder], side: int, rules: Rules) -> list[BookOrder]:
    """Resting orders of one side in AdBEV priority: ascending f, ties by sequence.

    Rank(price) is the dense rank of the order's price among the side's distinct prices (1 =
    best: highest bid, lowest ask); Rank(time) its rank by sequence (1 = oldest).
    """
    prices = sorted({o.price for o in orders}, reverse=side == BUY)
    price_rank = {p: i + 1 for i, p in enumerate(prices)}
    by_time = sorted(orders, key=lambda o: o.seq)
    time_rank = {o.order_id: i + 1 for i, o in enumerate(by_time)}
    a, b = rules.price_weight, rules.time_weight
    return sorted(
        by_time, key=lambda o: (a * price_rank[o.price] + b * time_rank[o.order_id], o.seq)
    )


def _adbev_next(
    book: Book, incoming: BookOrder, skipped: set[bytes], rules: Rules
) -> BookOrder | None:
    opposite = 1 - incoming.side
    for order in adbev_priority(book.orders(opposite), opposite, rules):
        if order.order_id not in skipped and crosses(incoming.side, incoming.price, order.price):
            return order
    return None


def match(book: Book, incoming: BookOrder, rules: Rules) -> MatchResult:
    """Match ``incoming`` against ``book``; rest what is left of it; report the trades.

    The caller has validated the order.  ``incoming`` is mutated (open, filled, cancelled,
    display, seq), as are the resting orders it trades with, through the book.
    """
    execution = rules.iceberg
    if execution == "adaptive":
        demand, supply = book.open_totals()
        if incoming.side == BUY:
            demand += incoming.open_wh
        else:
            supply += incoming.open_wh
        execution = "aggressive" if supply < demand else "passive"
    side = incoming.side
    opposite = 1 - side
    buying = side == BUY
    limit = incoming.price
    owner = incoming.owner
    taker = incoming.order_id
    adbev = rules.ranking == "adbev"
    first = book.first
    fills: list[Fill] = []
    self_trade = 0
    met_own = False
    deferred: list[BookOrder] = []
    skipped: set[bytes] = set()
    cursor: object | None = None
    while True:
        while incoming.open_wh > 0:
            key: object | None = None
            if adbev:
                found_adbev = _adbev_next(book, incoming, skipped, rules)
                if found_adbev is None:
                    break
                maker = found_adbev
            else:
                found = first(opposite, cursor)
                if found is None:
                    break
                key, maker = found
                if maker.price > limit if buying else maker.price < limit:
                    break  # the best order left does not cross: nothing further does
                if skipped and maker.order_id in skipped:
                    cursor = key  # an own order met before a restart: cut once only
                    continue
            if maker.owner == owner:
                cut = min(incoming.open_wh, maker.open_wh)
                incoming.open_wh -= cut
                incoming.cancelled_wh += cut
                self_trade += cut
                met_own = True
                skipped.add(maker.order_id)
                cursor = key
                continue
            quantity = min(incoming.open_wh, maker.display_wh)
            fills.append(
                Fill(maker.order_id, taker, maker.owner, owner, side, maker.price, quantity)
            )
            incoming.open_wh -= quantity
            incoming.filled_wh += quantity
            maker.open_wh -= quantity
            maker.display_wh -= quantity
            maker.filled_wh += quantity
            if maker.display_wh > 0:
                book.changed(maker)
            elif maker.open_wh == 0:
                book.remove(maker)
            elif execution == "aggressive":
                maker.show_next_clip()
                book.changed(maker)
            elif execution == "passive":
                deferred.append(maker)
                skipped.add(maker.order_id)
                cursor = key
                book.changed(maker)
            else:
                maker.show_next_clip()
                book.requeue(maker, book.next_seq())
        # Passive icebergs show their next clip at the tail now.  If the incoming order still
        # has quantity, those clips cross it: the walk goes on (from the best order again, so
        # nothing is left crossed), after everything else it could trade with.
        for maker in deferred:
            maker.show_next_clip()
            book.requeue(maker, book.next_seq())
            skipped.discard(maker.order_id)
        if incoming.open_wh == 0 or not deferred:
            break
        deferred.clear()
        cursor = None
    if incoming.open_wh > 0 and met_own:
        incoming.cancelled_wh += incoming.open_wh
        self_trade += incoming.open_wh
        incoming.open_wh = 0
    rested = incoming.open_wh > 0
    if rested:
        incoming.show_next_clip()
        incoming.seq = book.next_seq()
        book.insert(incoming)
    else:
        incoming.display_wh = 0
    return MatchResult(fills, self_trade, rested, execution)


def best_price(book: Book, side: int) -> int | None:
    """The best resting price of ``side`` (highest bid, lowest ask), or None."""
    found = book.first(side, None)
    return None if found is None else found[1].price


def _seq_of(order: BookOrder) -> int:
    return order.seq


class MemoryBook(Book):
    """A book in memory: per side, a sorted list of price keys and a list per price level.

    Used by the tests and the benchmark; the chain uses market.orders.StateBook, which keeps
    the same priority in the Merkle state.  A level's orders are kept in sequence order, so
    the best order is the head of the best level and a new order is appended (O(1)); cursors
    are (price key, seq) pairs, the price key being -price for bids and price for asks.
    """

    def __init__(self, first_seq: int = 1) -> None:
        # A community book has tens of price levels: a plain sorted list beats a tree here.
        self._prices: tuple[list[int], list[int]] = ([], [])
        self._levels: tuple[dict[int, list[BookOrder]], dict[int, list[BookOrder]]] = ({}, {})
        self._seq = first_seq
        self.by_id: dict[bytes, BookOrder] = {}

    @staticmethod
    def _price_key(order: BookOrder) -> int:
        return -order.price if order.side == BUY else order.price

    def first(self, side: int, after: object | None) -> tuple[object, BookOrder] | None:
        prices = self._prices[side]
        levels = self._levels[side]
        if after is None:
            if not prices:
                return None
            key = prices[0]
            order = levels[key][0]
            return (key, order.seq), order
        assert isinstance(after, tuple)
        after_key, after_seq = after
        level = levels.get(after_key)
        if level is not None:
            i = bisect_right(level, after_seq, key=_seq_of)
            if i < len(level):
                order = level[i]
                return (after_key, order.seq), order
        j = bisect_right(prices, after_key)
        if j >= len(prices):
            return None
        key = prices[j]
        order = levels[key][0]
        return (key, order.seq), order

    def orders(self, side: int) -> list[BookOrder]:
        levels = self._levels[side]
        return [order for key in self._prices[side] for order in levels[key]]

    def insert(self, order: BookOrder) -> None:
        key = self._price_key(order)
        levels = self._levels[order.side]
        level = levels.get(key)
        if level is None:
            levels[key] = [order]
            insort(self._prices[order.side], key)
        elif level[-1].seq < order.seq:
            level.append(order)
        else:
            insort(level, order, key=_seq_of)
        self.by_id[order.order_id] = order

    def remove(self, order: BookOrder) -> None:
        key = self._price_key(order)
        levels = self._levels[order.side]
        level = levels[key]
        if level[0] is order:
            del level[0]
        else:
            del level[bisect_left(level, order.seq, key=_seq_of)]
        if not level:
            del levels[key]
            prices = self._prices[order.side]
            del prices[bisect_left(prices, key)]
        del self.by_id[order.order_id]

    def requeue(self, order: BookOrder, seq: int) -> None:
        self.remove(order)
        order.seq = seq
        self.insert(order)

    def changed(self, order: BookOrder) -> None:
        return None

    def next_seq(self) -> int:
        seq = self._seq
        self._seq += 1
        return seq

    def levels(self, side: int) -> list[tuple[int, int, int]]:
        """(price, displayed quantity, orders) per price level, best first."""
        levels = self._levels[side]
        out = []
        for key in self._prices[side]:
            level = levels[key]
            out.append((level[0].price, sum(o.display_wh for o in level), len(level)))
        return out
