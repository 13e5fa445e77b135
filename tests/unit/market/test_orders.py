"""Orders on the chain: every field checked, gate closure, expiry, escrow, contracts, amends.

Why: these rules move money and decide who delivers energy to whom.  Each refusal must be a
typed error that leaves the state untouched (a half-applied order would lock money nobody can
release), gate closure must be exact to the millisecond because every validator reads the same
block time, and escrow must release exactly what it locked or balances drift.
"""

from __future__ import annotations

import pytest

from gridchain.market.accounts import get_account
from gridchain.market.errors import (
    ApplicationError,
    GateClosedError,
    InsufficientBalanceError,
    InvalidDeviceError,
    InvalidExpiryError,
    InvalidOrderError,
    InvalidPeakError,
    InvalidPriceError,
    InvalidQuantityError,
    InvalidSideError,
    NotAParticipantError,
    NotOrderOwnerError,
    OrderNotOpenError,
    SlotOutOfRangeError,
    UnknownMarketError,
    UnknownOrderError,
)
from gridchain.market.orders import (
    MAX_PRICE_MC_PER_KWH,
    MAX_QUANTITY_WH,
    OrderEvent,
    OrderStatus,
    TradeEvent,
    book_levels,
    contracts,
    lock_for,
    orders_of,
    payment_for,
)
from gridchain.market.state import Overlay
from gridchain.protocol.tx import Device, Market, PlaceOrder, Side
from tests.helpers import addr, signed
from tests.unit.market.conftest import (
    BALANCE_MC,
    EARLY_MS,
    GATE_MS,
    SLOT,
    SLOT_MS,
    START_MS,
    Exchange,
    make_exchange,
)


@pytest.fixture
def ex() -> Exchange:
    return make_exchange()


def test_lock_rounds_up_and_payment_rounds_down() -> None:
    assert lock_for(120_001, 333) == 39_961  # 39_960.333 mc
    assert payment_for(120_001, 333) == 39_960
    assert lock_for(100_000, 1000) == payment_for(100_000, 1000) == 100_000


# --- every field is checked ------------------------------------------------------------------

GOOD = {
    "market": 1,
    "slot": SLOT,
    "side": 0,
    "device": 3,
    "price_mc_per_kwh": 100_000,
    "quantity_wh": 1000,
    "peak_wh": 0,
    "expiry_ms": 0,
}

BAD_FIELDS: list[tuple[dict[str, int], type[ApplicationError]]] = [
    ({"market": 2}, UnknownMarketError),
    ({"side": 2}, InvalidSideError),
    ({"device": 4}, InvalidDeviceError),
    ({"device": int(Device.PV)}, InvalidDeviceError),  # a PV array cannot buy
    ({"side": 1, "device": int(Device.LOAD)}, InvalidDeviceError),  # a load cannot sell
    ({"price_mc_per_kwh": 0}, InvalidPriceError),
    ({"price_mc_per_kwh": MAX_PRICE_MC_PER_KWH + 1}, InvalidPriceError),
    ({"quantity_wh": 0}, InvalidQuantityError),
    ({"quantity_wh": MAX_QUANTITY_WH + 1}, InvalidQuantityError),
    ({"peak_wh": 1000}, InvalidPeakError),  # an iceberg must hide something
    ({"peak_wh": 1001}, InvalidPeakError),
    ({"expiry_ms": GATE_MS + 1}, InvalidExpiryError),  # beyond gate closure
    ({"expiry_ms": EARLY_MS}, InvalidExpiryError),  # not in the future
    ({"slot": SLOT + 7 * 96 * 2}, SlotOutOfRangeError),  # beyond the 7-day horizon
    ({"slot": SLOT - 12}, GateClosedError),  # already closed
    ({"price_mc_per_kwh": 1_000_001}, InsufficientBalanceError),  # locks 1_000_001 mc
]


@pytest.mark.parametrize(
    ("change", "error"), BAD_FIELDS, ids=[f"{e.__name__}-{list(c)}" for c, e in BAD_FIELDS]
)
def test_each_bad_field_is_refused_with_a_typed_error_and_changes_nothing(
    ex: Exchange, change: dict[str, int], error: type[ApplicationError]
) -> None:
    tx = ex.sign(ex.peers[0], PlaceOrder(**{**GOOD, **change}), probe=True)
    view = Overlay(ex.state)
    with pytest.raises(error):
        ex.app.apply_tx(tx, view, ex.ctx(EARLY_MS), admission=True)
    assert view.writes == {}
    assert error.http_status == 422


def test_the_good_order_is_accepted(ex: Exchange) -> None:
    ex.block([ex.sign(ex.peers[0], PlaceOrder(**GOOD))])
    assert ex.locked(ex.peers[0]) == 100_000


def test_the_governance_key_does_not_trade(ex: Exchange) -> None:
    tx = signed(ex.bundle.governance, ex.bundle.genesis.chain_id, 0, PlaceOrder(**GOOD))
    with pytest.raises(NotAParticipantError):
        ex.admit(tx)


# --- gate closure ----------------------------------------------------------------------------


def test_gate_closure_one_millisecond_before_and_after(ex: Exchange) -> None:
    a = ex.peers[0]
    before = ex.place(a, Side.SELL, 100_000, 500)
    ex.admit(before, GATE_MS - 1)  # accepted
    at = ex.place(a, Side.SELL, 100_000, 500, probe=True)
    with pytest.raises(GateClosedError):
        ex.admit(at, GATE_MS)
    with pytest.raises(GateClosedError):
        ex.admit(at, GATE_MS + 1)
    ex.block([before], GATE_MS - 1)
    assert ex.order(before).status == OrderStatus.OPEN


def test_an_order_reaching_a_block_after_gate_closure_is_recorded_as_rejected(
    ex: Exchange,
) -> None:
    """Admitted at GATE - 1, included in a block stamped GATE: nothing is locked or traded,
    but the transaction applies (the block stays valid) and the owner can see why."""
    b = ex.peers[1]
    late = ex.place(b, Side.BUY, 100_000, 500)
    ex.admit(late, GATE_MS - 1)
    execution = ex.block([late], GATE_MS)
    record = ex.order(late)
    assert record.status == OrderStatus.REJECTED
    assert (record.open_wh, record.cancelled_wh, record.filled_wh) == (0, 500, 0)
    assert ex.locked(b) == 0
    assert ex.nonce(b) == 1
    assert [e.kind for e in execution.events if isinstance(e, OrderEvent)] == ["rejected"]
    assert book_levels(ex.state, Market.INTRADAY, SLOT, Side.BUY) == []


def test_unmatched_orders_expire_at_the_first_block_at_or_past_gate_closure(
    ex: Exchange,
) -> None:
    a, b = ex.peers[0], ex.peers[1]
    ask = ex.place(a, Side.SELL, 110_000, 500)
    bid = ex.place(b, Side.BUY, 100_000, 700)
    ex.block([ask, bid])
    assert ex.locked(b) == 70_000

    execution = ex.block([], GATE_MS - 1)
    assert execution.events == ()
    assert ex.order(bid).status == OrderStatus.OPEN

    execution = ex.block([], GATE_MS)
    expired = [e for e in execution.events if isinstance(e, OrderEvent)]
    assert [e.kind for e in expired] == ["expired", "expired"]
    # deterministic order: by expiry time, then order id
    assert [e.order.order_id for e in expired] == sorted([ask.hash(), bid.hash()])
    assert ex.order(bid).status == OrderStatus.EXPIRED
    assert ex.order(bid).cancelled_wh == 700
    assert ex.locked(b) == 0
    assert book_levels(ex.state, Market.INTRADAY, SLOT, Side.SELL) == []
    assert book_levels(ex.state, Market.INTRADAY, SLOT, Side.BUY) == []


def test_orders_expire_in_order_of_their_expiry_time(ex: Exchange) -> None:
    a = ex.peers[0]
    late = ex.place(a, Side.SELL, 110_000, 500)
    early = ex.place(a, Side.SELL, 111_000, 500, expiry_ms=EARLY_MS + 5_000)
    ex.block([late, early])
    execution = ex.block([], GATE_MS + 10)
    kinds = [(e.kind, e.order.order_id) for e in execution.events if isinstance(e, OrderEvent)]
    assert kinds == [("expired", early.hash()), ("expired", late.hash())]


def test_an_order_with_its_own_expiry_leaves_the_book_then(ex: Exchange) -> None:
    a = ex.peers[0]
    tx = ex.place(a, Side.SELL, 110_000, 500, expiry_ms=EARLY_MS + 5_000)
    ex.block([tx])
    assert ex.order(tx).expires_ms == EARLY_MS + 5_000
    ex.block([], EARLY_MS + 4_999)
    assert ex.order(tx).status == OrderStatus.OPEN
    ex.block([], EARLY_MS + 5_000)
    assert ex.order(tx).status == OrderStatus.EXPIRED


def test_the_day_ahead_book_can_close_earlier() -> None:
    ex = make_exchange(day_ahead_gate_closure_ms=7_200_000)
    a = ex.peers[0]
    day_ahead = ex.place(a, Side.SELL, 100_000, 500, market=Market.DAY_AHEAD, probe=True)
    with pytest.raises(GateClosedError):
        ex.admit(day_ahead, START_MS - 7_200_000)
    ex.admit(day_ahead, START_MS - 7_200_001)
    intraday = ex.place(a, Side.SELL, 100_000, 500, market=Market.INTRADAY, probe=True)
    ex.admit(intraday, START_MS - 7_200_000)


def test_the_iceberg_waiting_limit_expires_the_iceberg_only() -> None:
    ex = make_exchange(iceberg_waiting_limit_ms=60_000)
    a = ex.peers[0]
    ice = ex.place(a, Side.SELL, 100_000, 900, peak=300)
    plain = ex.place(a, Side.SELL, 101_000, 900)
    ex.block([ice, plain], EARLY_MS)
    assert ex.order(ice).expires_ms == EARLY_MS + 60_000
    assert ex.order(plain).expires_ms == GATE_MS
    ex.block([], EARLY_MS + 60_000)
    assert ex.order(ice).status == OrderStatus.EXPIRED
    assert ex.order(plain).status == OrderStatus.OPEN


# --- escrow, fills and contracts -------------------------------------------------------------


def test_a_fill_at_the_resting_price_releases_the_difference(ex: Exchange) -> None:
    a, b = ex.peers[0], ex.peers[1]
    ask = ex.place(a, Side.SELL, 90_001, 333)
    bid = ex.place(b, Side.BUY, 120_001, 1000)
    execution = ex.block([ask, bid])
    [trade] = [e.contract for e in execution.events if isinstance(e, TradeEvent)]
    assert (trade.quantity_wh, trade.price_mc_per_kwh) == (333, 90_001)
    assert trade.amount_mc == payment_for(90_001, 333) == 29_970
    assert (trade.seller, trade.buyer) == (addr(a), addr(b))
    assert (trade.sell_order, trade.buy_order) == (ask.hash(), bid.hash())
    # escrow = the contract + the lock of what is still open at the bid's own price
    assert ex.locked(b) == 29_970 + lock_for(120_001, 667)
    assert ex.locked(a) == 0  # a sell locks nothing
    for peer in ex.peers:  # no balance moves before settlement
        assert get_account(ex.state, addr(peer)).balance_mc == BALANCE_MC


def test_cancel_after_a_partial_match_keeps_the_contract_and_releases_the_rest(
    ex: Exchange,
) -> None:
    a, b = ex.peers[0], ex.peers[1]
    ask = ex.place(a, Side.SELL, 100_000, 400)
    bid = ex.place(b, Side.BUY, 110_000, 1000)
    ex.block([ask, bid])
    assert ex.locked(b) == 40_000 + 66_000
    execution = ex.block([ex.cancel(b, bid)])
    record = ex.order(bid)
    assert record.status == OrderStatus.CANCELLED
    assert (record.filled_wh, record.cancelled_wh, record.open_wh) == (400, 600, 0)
    assert ex.locked(b) == 40_000  # only the contract is still in escrow
    assert [c.quantity_wh for c in contracts(ex.state, slot=SLOT)] == [400]
    assert [e.kind for e in execution.events if isinstance(e, OrderEvent)] == ["cancelled"]
    assert book_levels(ex.state, Market.INTRADAY, SLOT, Side.BUY) == []


def test_cancel_refusals(ex: Exchange) -> None:
    a, b = ex.peers[0], ex.peers[1]
    ask = ex.place(a, Side.SELL, 100_000, 400)
    bid = ex.place(b, Side.BUY, 100_000, 400)
    ex.block([ask, bid])  # both filled
    with pytest.raises(UnknownOrderError):
        ex.admit(ex.cancel(a, b"\x07" * 32, probe=True))
    with pytest.raises(NotOrderOwnerError):
        ex.admit(ex.cancel(a, bid, probe=True))
    with pytest.raises(OrderNotOpenError):
        ex.admit(ex.cancel(a, ask, probe=True))
    assert ex.order(ask).status == OrderStatus.FILLED


def test_cancel_at_gate_closure_is_refused_at_admission_and_a_no_op_in_a_block(
    ex: Exchange,
) -> None:
    a = ex.peers[0]
    ask = ex.place(a, Side.SELL, 100_000, 400)
    ex.block([ask])
    cancel = ex.cancel(a, ask)
    ex.admit(cancel, GATE_MS - 1)
    with pytest.raises(GateClosedError):
        ex.admit(cancel, GATE_MS)
    execution = ex.block([cancel], GATE_MS)  # expiry ran first; the cancel finds it closed
    assert [e.kind for e in execution.events if isinstance(e, OrderEvent)] == ["expired"]
    assert ex.order(ask).status == OrderStatus.EXPIRED
    assert ex.nonce(a) == 2


def test_self_trade_cancels_the_incoming_overlap_and_releases_its_escrow(ex: Exchange) -> None:
    a, b = ex.peers[0], ex.peers[1]
    own_ask = ex.place(a, Side.SELL, 100_000, 300)
    other_ask = ex.place(b, Side.SELL, 101_000, 500)
    own_bid = ex.place(a, Side.BUY, 102_000, 1000)
    execution = ex.block([own_ask, other_ask, own_bid])
    trades = [e.contract for e in execution.events if isinstance(e, TradeEvent)]
    assert [(t.seller, t.buyer, t.quantity_wh) for t in trades] == [(addr(b), addr(a), 500)]
    record = ex.order(own_bid)
    assert (record.filled_wh, record.cancelled_wh, record.open_wh) == (500, 500, 0)
    assert record.status == OrderStatus.CANCELLED  # not everything traded
    assert ex.locked(a) == payment_for(101_000, 500)
    assert ex.order(own_ask).open_wh == 300


# --- amend -----------------------------------------------------------------------------------


def test_amending_down_at_the_same_price_keeps_time_priority(ex: Exchange) -> None:
    a, b, c = ex.peers
    first = ex.place(a, Side.SELL, 100_000, 500)
    second = ex.place(b, Side.SELL, 100_000, 500)
    ex.block([first, second])
    seq = ex.order(first).seq
    ex.block([ex.amend(a, first, 100_000, 200)])
    amended = ex.order(first)
    assert (amended.seq, amended.open_wh, amended.quantity_wh) == (seq, 200, 200)
    execution = ex.block([ex.place(c, Side.BUY, 100_000, 200)])
    [trade] = [e.contract for e in execution.events if isinstance(e, TradeEvent)]
    assert trade.sell_order == first.hash()


def test_amending_the_price_re_enters_the_book_and_may_match(ex: Exchange) -> None:
    a, b = ex.peers[0], ex.peers[1]
    ask = ex.place(a, Side.SELL, 100_000, 500)
    bid = ex.place(b, Side.BUY, 90_000, 800)
    ex.block([ask, bid])
    assert ex.locked(b) == 72_000
    execution = ex.block([ex.amend(b, bid, 100_000, 800)])
    [trade] = [e.contract for e in execution.events if isinstance(e, TradeEvent)]
    assert (trade.quantity_wh, trade.price_mc_per_kwh) == (500, 100_000)
    record = ex.order(bid)
    assert (record.price_mc_per_kwh, record.open_wh, record.filled_wh) == (100_000, 300, 500)
    assert ex.locked(b) == 50_000 + 30_000


def test_amending_after_a_partial_fill_changes_only_the_open_part(ex: Exchange) -> None:
    a, b = ex.peers[0], ex.peers[1]
    ask = ex.place(a, Side.SELL, 100_000, 300)
    bid = ex.place(b, Side.BUY, 100_000, 1000)
    ex.block([ask, bid])
    ex.block([ex.amend(b, bid, 95_000, 1500)])
    record = ex.order(bid)
    assert (record.filled_wh, record.open_wh, record.quantity_wh) == (300, 1500, 1800)
    assert ex.locked(b) == 30_000 + lock_for(95_000, 1500)


def test_amend_refusals(ex: Exchange) -> None:
    a, b = ex.peers[0], ex.peers[1]
    bid = ex.place(b, Side.BUY, 100_000, 1000)
    ex.block([bid])
    with pytest.raises(InvalidOrderError):
        ex.admit(ex.amend(b, bid, 100_000, 1000, probe=True))  # changes nothing
    with pytest.raises(InsufficientBalanceError):
        ex.admit(ex.amend(b, bid, 1_000_001, 1000, probe=True))
    with pytest.raises(InvalidQuantityError):
        ex.admit(ex.amend(b, bid, 100_000, 0, probe=True))
    with pytest.raises(NotOrderOwnerError):
        ex.admit(ex.amend(a, bid, 100_000, 10, probe=True))
    with pytest.raises(GateClosedError):
        ex.admit(ex.amend(b, bid, 100_000, 10, probe=True), GATE_MS)


# --- listing, building blocks, the AdBEV option ----------------------------------------------


def test_contracts_and_orders_are_listed_by_party_and_slot(ex: Exchange) -> None:
    a, b, c = ex.peers
    ex.block(
        [
            ex.place(a, Side.SELL, 100_000, 300),
            ex.place(a, Side.SELL, 100_000, 300, slot=SLOT + 1),
            ex.place(b, Side.BUY, 100_000, 300),
            ex.place(c, Side.BUY, 100_000, 300, slot=SLOT + 1),
        ]
    )
    assert [t.buyer for t in contracts(ex.state, party=addr(a))] == [addr(b), addr(c)]
    assert [t.buyer for t in contracts(ex.state, party=addr(a), slot=SLOT + 1)] == [addr(c)]
    assert [t.seller for t in contracts(ex.state, party=addr(b))] == [addr(a)]
    assert [t.slot for t in contracts(ex.state)] == [SLOT, SLOT + 1]
    assert [o.slot for o in orders_of(ex.state, addr(a))] == [SLOT, SLOT + 1]
    assert list(orders_of(ex.state, addr(c), SLOT)) == []


def test_a_proposal_leaves_out_what_does_not_apply_and_executes_like_the_rest(
    ex: Exchange,
) -> None:
    a, b = ex.peers[0], ex.peers[1]
    good = ex.place(a, Side.SELL, 100_000, 300)
    broke = ex.place(b, Side.BUY, 1_000_001, 1000)  # its escrow exceeds the balance
    after = ex.place(b, Side.BUY, 100_000, 100)  # nonce 1: depends on the left-out one
    fine = ex.place(a, Side.SELL, 100_000, 100)
    built = ex.app.build_block(ex.state, [good, broke, after, fine], ex.ctx(EARLY_MS))
    assert built.txs == (good, fine)
    assert [(tx, type(err)) for tx, err in built.left_out] == [
        (broke, InsufficientBalanceError),
        (after, type(built.left_out[1][1])),
    ]
    assert built.left_out[1][1].code == "nonce_gap"
    plain = ex.app.execute_block(ex.state, list(built.txs), ex.ctx(EARLY_MS))
    assert plain.state_root == built.execution.state_root
    assert plain.writes == built.execution.writes


def test_the_adbev_ranking_is_chosen_in_genesis() -> None:
    ex = make_exchange(matching_rule="adbev")
    a, b, c = ex.peers
    old = ex.place(a, Side.SELL, 101_000, 100)
    far = [ex.place(a, Side.SELL, 105_000, 100) for _ in range(10)]
    young = ex.place(b, Side.SELL, 100_000, 100)
    ex.block([old, *far, young])
    execution = ex.block([ex.place(c, Side.BUY, 101_000, 100)])
    [trade] = [e.contract for e in execution.events if isinstance(e, TradeEvent)]
    assert trade.sell_order == old.hash()


def test_order_events_report_trades_then_orders(ex: Exchange) -> None:
    a, b = ex.peers[0], ex.peers[1]
    ask = ex.place(a, Side.SELL, 100_000, 900, peak=300)
    ex.block([ask])
    execution = ex.block([ex.place(b, Side.BUY, 100_000, 700)])
    kinds = [
        ("trade", e.contract.quantity_wh) if isinstance(e, TradeEvent) else (e.kind, 0)
        for e in execution.events
    ]
    assert kinds == [("trade", 300), ("trade", 300), ("trade", 100), ("placed", 0), ("traded", 0)]
    assert book_levels(ex.state, Market.INTRADAY, SLOT, Side.SELL) == [(100_000, 200, 1)]


def test_slot_boundaries_are_whole_multiples_of_the_slot_length(ex: Exchange) -> None:
    assert ex.app.exchange.slot_start_ms(SLOT) == START_MS
    assert ex.app.exchange.slot_of(START_MS) == SLOT
    assert ex.app.exchange.slot_of(START_MS - 1) == SLOT - 1
    assert ex.app.exchange.gate_closure_ms(Market.INTRADAY, SLOT) == START_MS - 3_600_000
    assert ex.bundle.genesis.params.slot_length_ms == SLOT_MS
