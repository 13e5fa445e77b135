"""Properties of the markets on the chain, over random sequences of orders, amends and cancels.

Why: the unit tests pin each rule on a chosen example; these check that no sequence breaks the
ledger: money is conserved, no balance goes negative, escrow always equals what open buys and
unsettled contracts hold, books are never left crossed, the same transactions always give the
same trades and state root, and the chain's state-backed book trades exactly like the
in-memory book of market/book.py (so the unit tests and the benchmark speak for the chain).
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from gridchain.genesis.schema import IcebergExecution, MatchingRule
from gridchain.market.accounts import ACCOUNT_PREFIX, Account, get_supply
from gridchain.market.book import BUY, SELL, BookOrder, MemoryBook, Rules, match
from gridchain.market.errors import ApplicationError
from gridchain.market.orders import (
    BOOK_PREFIX,
    ORDER_PREFIX,
    Contract,
    OrderRecord,
    OrderStatus,
    contracts,
    lock_for,
)
from gridchain.market.state import Overlay, StateReader
from gridchain.protocol.encoding import decode
from gridchain.protocol.tx import AmendOrder, CancelOrder, PlaceOrder, Transaction
from tests.helpers import addr, signed
from tests.unit.market.conftest import (
    BALANCE_MC,
    EARLY_MS,
    GATE_MS,
    SLOT,
    SLOT_MS,
    Exchange,
    make_exchange,
)

MID = 100_000
RULES: list[tuple[MatchingRule, IcebergExecution]] = [
    (ranking, iceberg)
    for ranking in ("price_time", "adbev")
    for iceberg in ("standard", "aggressive", "passive", "adaptive")
]


@dataclass(frozen=True)
class Place:
    who: int
    side: int
    price_step: int
    quantity: int
    peak: int
    slot_offset: int
    market: int


@dataclass(frozen=True)
class Cancel:
    who: int
    pick: int


@dataclass(frozen=True)
class Amend:
    who: int
    pick: int
    price_step: int
    quantity: int


class EndBlock:
    pass


Step = Place | Cancel | Amend | EndBlock


@st.composite
def places(draw: st.DrawFn, *, one_book: bool = False) -> Place:
    quantity = draw(st.integers(1, 2000))
    iceberg = quantity > 1 and draw(st.booleans())
    return Place(
        who=draw(st.integers(0, 2)),
        side=draw(st.sampled_from([BUY, SELL])),
        price_step=draw(st.integers(-4, 4)),
        quantity=quantity,
        peak=draw(st.integers(1, quantity - 1)) if iceberg else 0,
        slot_offset=0 if one_book else draw(st.integers(0, 1)),
        market=1 if one_book else draw(st.integers(0, 1)),
    )


steps = st.lists(
    st.one_of(
        places(),
        places(),
        st.builds(Cancel, who=st.integers(0, 2), pick=st.integers(0, 50)),
        st.builds(
            Amend,
            who=st.integers(0, 2),
            pick=st.integers(0, 50),
            price_step=st.integers(-4, 4),
            quantity=st.integers(1, 2000),
        ),
        st.just(EndBlock()),
    ),
    max_size=40,
)


def _records(state: StateReader) -> list[OrderRecord]:
    return [decode(raw, OrderRecord) for _, raw in state.scan(ORDER_PREFIX)]


def _accounts(state: StateReader) -> dict[bytes, Account]:
    return {k[len(ACCOUNT_PREFIX) :]: decode(v, Account) for k, v in state.scan(ACCOUNT_PREFIX)}


def check_ledger(ex: Exchange) -> None:
    """Every invariant the markets promise, on the committed state."""
    state = ex.state
    accounts = _accounts(state)
    assert sum(a.balance_mc for a in accounts.values()) == 3 * BALANCE_MC == get_supply(state)
    orders = _records(state)
    all_contracts: list[Contract] = list(contracts(state))
    expected_lock: dict[bytes, int] = {}
    for o in orders:
        assert o.quantity_wh == o.filled_wh + o.cancelled_wh + o.open_wh
        assert o.display_wh <= o.open_wh
        assert (o.status == OrderStatus.OPEN) == (o.open_wh > 0)
        if o.status == OrderStatus.OPEN:
            assert o.display_wh > 0
            assert o.peak_wh == 0 or o.display_wh <= o.peak_wh
        if o.side == BUY:
            expected_lock[o.owner] = expected_lock.get(o.owner, 0) + lock_for(
                o.price_mc_per_kwh, o.open_wh
            )
    filled: dict[bytes, int] = {}
    for c in all_contracts:
        expected_lock[c.buyer] = expected_lock.get(c.buyer, 0) + c.amount_mc
        filled[c.buy_order] = filled.get(c.buy_order, 0) + c.quantity_wh
        filled[c.sell_order] = filled.get(c.sell_order, 0) + c.quantity_wh
        assert c.seller != c.buyer
    for o in orders:
        assert filled.get(o.order_id, 0) == o.filled_wh
    for address, account in accounts.items():
        assert 0 <= account.locked_mc <= account.balance_mc  # nothing negative, nothing overdrawn
        assert account.locked_mc == expected_lock.get(address, 0)
    # The priority index holds exactly the open orders, and no book is crossed.
    indexed = [key[-32:] for key, _ in state.scan(BOOK_PREFIX)]
    assert sorted(indexed) == sorted(o.order_id for o in orders if o.status == OrderStatus.OPEN)
    best: dict[tuple[int, int, int], int] = {}
    for o in orders:
        if o.status != OrderStatus.OPEN:
            continue
        key = (o.market, o.slot, o.side)
        pick = max if o.side == BUY else min
        best[key] = pick(best.get(key, o.price_mc_per_kwh), o.price_mc_per_kwh)
    for (market, slot, side), price in best.items():
        if side == BUY and (market, slot, SELL) in best:
            assert price < best[(market, slot, SELL)]


def run_steps(ex: Exchange, plan: list[Step]) -> list[tuple[int, list[Transaction]]]:
    """Execute ``plan`` block by block as a proposer does (a step that does not apply is left
    out); check the ledger after every block; return each block's time and transactions."""
    placed: dict[int, list[Transaction]] = {0: [], 1: [], 2: []}
    blocks: list[tuple[int, list[Transaction]]] = []
    pending: list[Step] = []
    times = [EARLY_MS + 1000 * i for i in range(len(plan) + 1)]

    def flush(timestamp_ms: int) -> None:
        ctx = ex.ctx(timestamp_ms)
        view = Overlay(ex.state)
        ex.app.begin_block(view, ctx)
        kept: list[Transaction] = []
        for step in pending:
            if isinstance(step, EndBlock):
                continue
            who = ex.peers[step.who]
            if isinstance(step, Place):
                body: PlaceOrder | CancelOrder | AmendOrder = PlaceOrder(
                    step.market,
                    SLOT + step.slot_offset,
                    step.side,
                    3 if step.side == BUY else 1,
                    MID + 1000 * step.price_step,
                    step.quantity,
                    step.peak,
                    0,
                )
            else:
                mine = placed[step.who]
                if not mine:
                    continue
                target = mine[step.pick % len(mine)].hash()
                if isinstance(step, Cancel):
                    body = CancelOrder(target)
                else:
                    body = AmendOrder(target, MID + 1000 * step.price_step, step.quantity)
            sender = who.key.public_key
            nonce = ex.nonce(who) + sum(1 for t in kept if t.sender == sender)
            tx = signed(who, ex.bundle.genesis.chain_id, nonce, body)
            trial = Overlay(view)
            try:
                ex.app.apply_tx(tx, trial, ctx)
            except ApplicationError:
                continue  # refused (a cancel of a filled order, too little money): left out
            trial.merge_into_parent()
            kept.append(tx)
            if isinstance(step, Place):
                placed[step.who].append(tx)
        execution = ex.app.execute_block(ex.state, kept, ctx)
        assert execution.writes == view.writes  # the proposer's loop and execute_block agree
        ex.state.apply(execution.writes)
        ex.height += 1
        blocks.append((timestamp_ms, kept))
        pending.clear()
        check_ledger(ex)

    for i, step in enumerate(plan):
        pending.append(step)
        if isinstance(step, EndBlock):
            flush(times[i])
    flush(times[-1])
    flush(GATE_MS)  # the first slot's books close
    flush(GATE_MS + SLOT_MS)  # and the second's
    return blocks


@settings(max_examples=40, deadline=None)
@given(plan=steps, rules=st.sampled_from(RULES))
def test_money_is_conserved_and_escrow_is_exact_for_any_sequence(
    plan: list[Step], rules: tuple[MatchingRule, IcebergExecution]
) -> None:
    """Checked after every block by run_steps: money, escrow, quantities, uncrossed books;
    and at the end every book is closed and only contracts hold escrow."""
    ranking, iceberg = rules
    ex = make_exchange(matching_rule=ranking, iceberg_execution=iceberg)
    run_steps(ex, plan)
    for o in _records(ex.state):
        assert o.status != OrderStatus.OPEN
    for peer in ex.peers:
        bought = sum(
            c.amount_mc for c in contracts(ex.state, party=addr(peer)) if c.buyer == addr(peer)
        )
        assert ex.locked(peer) == bought


@settings(max_examples=25, deadline=None)
@given(plan=steps, rules=st.sampled_from(RULES))
def test_the_same_transactions_give_the_same_trades_and_state_root(
    plan: list[Step], rules: tuple[MatchingRule, IcebergExecution]
) -> None:
    ranking, iceberg = rules
    first = make_exchange(matching_rule=ranking, iceberg_execution=iceberg)
    blocks = run_steps(first, plan)
    again = make_exchange(matching_rule=ranking, iceberg_execution=iceberg)
    for timestamp_ms, txs in blocks:
        execution = again.app.execute_block(again.state, txs, again.ctx(timestamp_ms))
        again.state.apply(execution.writes)
        again.height += 1
    assert again.state.root() == first.state.root()
    assert list(contracts(again.state)) == list(contracts(first.state))


@settings(max_examples=40, deadline=None)
@given(orders=st.lists(places(one_book=True), max_size=30), rules=st.sampled_from(RULES))
def test_the_chain_book_trades_exactly_like_the_memory_book(
    orders: list[Place], rules: tuple[MatchingRule, IcebergExecution]
) -> None:
    ranking, iceberg = rules
    ex = make_exchange(matching_rule=ranking, iceberg_execution=iceberg)
    ex.bundle = ex.bundle  # (rich enough: every lock here is at most 210_000 mc)
    txs = [
        ex.place(
            ex.peers[o.who],
            o.side,  # type: ignore[arg-type]
            MID + 1000 * o.price_step,
            o.quantity,
            peak=o.peak,
        )
        for o in orders
    ]
    memory = MemoryBook(first_seq=1)
    rule = Rules(ranking=ranking, iceberg=iceberg)
    expected = []
    chain_txs = []
    spent = {0: 0, 1: 0, 2: 0}
    for o, tx in zip(orders, txs, strict=True):
        lock = lock_for(MID + 1000 * o.price_step, o.quantity) if o.side == BUY else 0
        if spent[o.who] + lock > BALANCE_MC:
            break  # keep the sequence within every buyer's money
        spent[o.who] += lock
        chain_txs.append(tx)
        incoming = BookOrder(
            tx.hash(),
            addr(ex.peers[o.who]),
            o.side,
            MID + 1000 * o.price_step,
            o.quantity,
            o.quantity,
            o.peak,
        )
        for fill in match(memory, incoming, rule).fills:
            expected.append(
                (fill.sell_order, fill.buy_order, fill.quantity_wh, fill.price_mc_per_kwh)
            )
    ex.block(chain_txs)
    got = [
        (c.sell_order, c.buy_order, c.quantity_wh, c.price_mc_per_kwh) for c in contracts(ex.state)
    ]
    assert got == expected
    check_ledger(ex)
