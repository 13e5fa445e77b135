"""Settlement of contracts against meter readings (market/settlement.py).

Why: this is where a promise to deliver energy becomes money.  Each case here is one the
source's trade record must show correctly: exact delivery, a short seller fined, surplus and
unmet demand cleared in the pool, missing readings as zero delivery, several contracts sharing
one meter pro rata, and the source's own example on net meters.  Every case also checks that no
money appears or disappears and that a slot is settled once, however many blocks follow.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridchain.genesis.builder import NamedKey
from gridchain.market.accounts import get_account, get_supply
from gridchain.market.orders import SLOT_INDEX_PREFIX, ContractStatus, contracts
from gridchain.market.pool import PoolInputError, pro_rata
from gridchain.market.settlement import (
    DeliveryStatus,
    GroupMetering,
    Metering,
    Receipt,
    SettleItem,
    receipts,
    settle_slot,
)
from gridchain.market.slot_settlement import CURSOR_KEY, settled_before
from gridchain.protocol.address import address_of, parse_address
from gridchain.protocol.encoding import decode
from gridchain.protocol.tx import Device, Side
from tests.helpers import addr, all_accounts
from tests.unit.market.conftest import BALANCE_MC, EARLY_MS, SLOT, START_MS, Exchange
from tests.unit.market.metering import (
    BRIDGE_1,
    BRIDGE_2,
    GOVERNANCE_MC,
    MeterChain,
    meter_bundle,
    meter_entry,
    readings_tx,
)

Q = 900_000
END_MS = START_MS + Q
GRACE_MS = 300_000
SETTLE_MS = END_MS + GRACE_MS
PRICE = 120_000  # mc/kWh
PENALTY = 100_000  # the genesis default, mc/kWh
#: The default tariff of the slot's hour (04:00 UTC): retail and feed-in, mc/kWh.
R_BUY, R_SELL = 180_000, 60_000


def make(meters: list[dict[str, Any]] | None = None) -> Exchange:
    from gridchain.market.app import Application

    bundle = meter_bundle(meters)
    app = Application(bundle.genesis)
    return Exchange(bundle, app, app.genesis_state())


@pytest.fixture
def ex() -> Exchange:
    return make()


def trade(
    ex: Exchange, seller: NamedKey, buyer: NamedKey, quantity: int, price: int = PRICE
) -> None:
    ex.block(
        [
            ex.place(seller, Side.SELL, price, quantity, device=int(Device.PV)),
            ex.place(buyer, Side.BUY, price, quantity, device=int(Device.LOAD)),
        ],
        EARLY_MS,
    )


def meter(ex: Exchange, meter_id: str, bridge: Any = BRIDGE_1) -> MeterChain:
    return MeterChain(meter_id, bridge, ex.bundle.genesis.chain_id)


def send(ex: Exchange, bridge: Any, *readings: Any, at: int = END_MS) -> None:
    ex.block([readings_tx(ex, bridge, *readings)], at)


def around_slot(chain: MeterChain, before: tuple[int, int], after: tuple[int, int]) -> list[Any]:
    """A reading ending at the slot's start and one ending at its end (import, export)."""
    return [
        chain.reading(START_MS - Q, START_MS, *before),
        chain.reading(START_MS, END_MS, *after),
    ]


def settle(ex: Exchange, at: int = SETTLE_MS) -> list[Receipt]:
    ex.block([], at)
    return receipts(ex.state, slot=SLOT)


def total_money(ex: Exchange) -> int:
    return sum(a.balance_mc for a in all_accounts(ex.state).values())


def balance(ex: Exchange, who: NamedKey | bytes) -> int:
    address = who if isinstance(who, bytes) else addr(who)
    return get_account(ex.state, address).balance_mc


def governance(ex: Exchange) -> bytes:
    return parse_address(ex.bundle.genesis.governance_address)


def test_exact_delivery(ex: Exchange) -> None:
    a, b, _ = ex.peers
    trade(ex, a, b, 1000)
    supply = total_money(ex)
    send(
        ex,
        BRIDGE_1,
        *around_slot(meter(ex, "pv-a"), (0, 5000), (0, 6000)),
        *around_slot(meter(ex, "load-b"), (7000, 0), (8000, 0)),
    )
    ex.block([], SETTLE_MS - 1)  # one ms early: nothing settles
    assert receipts(ex.state) == []
    (r,) = settle(ex)
    paid = PRICE * 1000 // 1000
    assert (r.delivered_wh, r.taken_wh, r.shortfall_wh, r.fine_mc) == (1000, 1000, 0, 0)
    assert (r.paid_mc, r.released_mc, r.escrow_mc) == (paid, 0, paid)
    assert (r.seller_start_wh, r.seller_end_wh, r.seller_metered_wh) == (5000, 6000, 1000)
    assert (r.buyer_start_wh, r.buyer_end_wh, r.buyer_metered_wh) == (7000, 8000, 1000)
    assert r.seller_metering == r.buyer_metering == Metering.COMPLETE
    assert r.status == DeliveryStatus.DELIVERED
    assert (r.seller_pool_wh, r.buyer_pool_wh, r.seller_pool_mc, r.buyer_pool_mc) == (0, 0, 0, 0)
    assert balance(ex, a) == BALANCE_MC + paid
    assert balance(ex, b) == BALANCE_MC - paid
    assert get_account(ex.state, addr(b)).locked_mc == 0
    assert [c.status for c in contracts(ex.state, slot=SLOT)] == [ContractStatus.SETTLED]
    assert total_money(ex) == supply == get_supply(ex.state)


def test_shortfall_is_fined_to_the_buyer_and_the_buyer_draws_the_rest_from_the_pool(
    ex: Exchange,
) -> None:
    a, b, _ = ex.peers
    trade(ex, a, b, 1000)
    supply = total_money(ex)
    send(
        ex,
        BRIDGE_1,
        *around_slot(meter(ex, "pv-a"), (0, 0), (0, 600)),
        *around_slot(meter(ex, "load-b"), (0, 0), (1000, 0)),
    )
    (r,) = settle(ex)
    paid = PRICE * 600 // 1000
    fine = 400 * PENALTY // 1000
    assert (r.delivered_wh, r.shortfall_wh, r.fine_mc, r.fine_paid_mc) == (600, 400, fine, fine)
    assert r.status == DeliveryStatus.PARTIAL
    assert r.released_mc == PRICE * 1000 // 1000 - paid
    # Nobody supplies the pool (SDR = 0): the buyer's 400 Wh come from the grid at r_buy.
    pool_cost = -(-400 * R_BUY // 1000)
    assert (r.buyer_pool_wh, r.buyer_pool_mc, r.pool_p_buy_mc_per_kwh) == (-400, -pool_cost, R_BUY)
    assert balance(ex, a) == BALANCE_MC + paid - fine
    assert balance(ex, b) == BALANCE_MC - paid + fine - pool_cost
    assert balance(ex, governance(ex)) == GOVERNANCE_MC + pool_cost
    assert total_money(ex) == supply


def test_surplus_goes_to_the_pool(ex: Exchange) -> None:
    a, b, _ = ex.peers
    trade(ex, a, b, 1000)
    send(
        ex,
        BRIDGE_1,
        *around_slot(meter(ex, "pv-a"), (0, 0), (0, 1500)),
        *around_slot(meter(ex, "load-b"), (0, 0), (1000, 0)),
    )
    (r,) = settle(ex)
    assert (r.delivered_wh, r.fine_mc, r.status) == (1000, 0, DeliveryStatus.DELIVERED)
    income = 500 * R_SELL // 1000  # no pool demand: SDR unbounded, p_sell = r_sell
    assert (r.seller_pool_wh, r.seller_pool_mc, r.pool_p_sell_mc_per_kwh) == (500, income, R_SELL)
    assert balance(ex, a) == BALANCE_MC + PRICE + income
    assert balance(ex, governance(ex)) == GOVERNANCE_MC - income


def test_missing_readings_are_zero_delivery(ex: Exchange) -> None:
    a, b, _ = ex.peers
    trade(ex, a, b, 1000)
    # Only the reading at the slot's start arrives for the PV meter; the load meter sends
    # nothing at all.
    pv = meter(ex, "pv-a")
    send(ex, BRIDGE_1, pv.reading(START_MS - Q, START_MS, 0, 100), at=START_MS)
    (r,) = settle(ex)
    fine = 1000 * PENALTY // 1000
    assert (r.delivered_wh, r.paid_mc, r.released_mc) == (0, 0, PRICE)
    assert r.status == DeliveryStatus.NOT_DELIVERED
    assert (r.fine_mc, r.fine_paid_mc) == (fine, fine)
    assert r.seller_metering == r.buyer_metering == Metering.MISSING_READINGS
    assert (r.buyer_metered_wh, r.buyer_pool_wh) == (0, 0)
    assert balance(ex, a) == BALANCE_MC - fine
    assert balance(ex, b) == BALANCE_MC + fine
    assert get_account(ex.state, addr(b)).locked_mc == 0


def test_a_reading_after_settlement_changes_nothing(ex: Exchange) -> None:
    a, b, _ = ex.peers
    trade(ex, a, b, 1000)
    (first,) = settle(ex)
    late = around_slot(meter(ex, "pv-a"), (0, 0), (0, 1000))
    send(ex, BRIDGE_1, *late, at=SETTLE_MS + 1)
    ex.block([], SETTLE_MS + 3 * Q)  # (within RETAIN_MS: the receipt is still live)
    assert receipts(ex.state) == [first]


def test_pro_rata_over_several_contracts(ex: Exchange) -> None:
    a, b, c = ex.peers
    ex.block(
        [
            ex.place(a, Side.SELL, PRICE, 600, device=int(Device.PV)),
            ex.place(b, Side.BUY, PRICE, 600, device=int(Device.LOAD)),
            ex.place(a, Side.SELL, PRICE, 900, device=int(Device.PV)),
            ex.place(c, Side.BUY, PRICE, 900, device=int(Device.LOAD)),
        ],
        EARLY_MS,
    )
    send(ex, BRIDGE_1, *around_slot(meter(ex, "pv-a"), (0, 0), (0, 1001)))
    r1, r2 = settle(ex)
    # 1001 * 600/1500 = 400.4 and 1001 * 900/1500 = 600.6: floors 400 + 600, the left-over
    # Wh goes to the larger remainder.
    assert (r1.delivered_wh, r2.delivered_wh) == (400, 601)
    assert (r1.buyer, r2.buyer) == (addr(b), addr(c))
    assert r1.fine_mc == 200 * PENALTY // 1000
    assert r2.fine_mc == 299 * PENALTY // 1000


def test_settles_exactly_once(ex: Exchange) -> None:
    a, b, _ = ex.peers
    trade(ex, a, b, 1000)
    send(ex, BRIDGE_1, *around_slot(meter(ex, "pv-a"), (0, 0), (0, 1000)))
    settled = settle(ex)
    state_after = dict(ex.state.items())
    for later in (SETTLE_MS + 1, SETTLE_MS + Q, SETTLE_MS + 3 * Q):
        execution = ex.app.execute_block(ex.state, [], ex.ctx(later))
        # Later slots, with nothing metered, only move the cursor on.
        assert set(execution.writes) <= {CURSOR_KEY}
        ex.state.apply(execution.writes)
    assert settled_before(ex.bundle.genesis, ex.state) == SLOT + 4
    assert {k: v for k, v in ex.state.items() if k != CURSOR_KEY} == {
        k: v for k, v in state_after.items() if k != CURSOR_KEY
    }
    assert receipts(ex.state, party=addr(a)) == receipts(ex.state, party=addr(b)) == settled
    # Much later the slot is pruned (market/pruning.py): its records leave the live state
    # with their values as they were, and nothing is settled again.
    execution = ex.app.execute_block(ex.state, [], ex.ctx(SETTLE_MS + 100 * Q))
    assert set(execution.writes) - set(execution.archived) <= {
        b"meta:pruned",
        CURSOR_KEY,
        *_slot_index(ex),
    }
    assert all(execution.writes[k] is None for k in execution.archived)
    assert {k: state_after[k] for k in execution.archived} == execution.archived
    archived_receipts = [
        decode(v, Receipt) for k, v in execution.archived.items() if k.startswith(b"stl:")
    ]
    assert archived_receipts == settled


def _slot_index(ex: Exchange) -> list[bytes]:
    return [k for k, _ in ex.state.scan(SLOT_INDEX_PREFIX)]


def test_the_sources_example_on_net_meters() -> None:
    # Seed 000: seller net meter -666.8 -> -667.9 kWh on a 1 kWh contract: delivered, no fine;
    # buyer 271.0 -> 271.1 kWh.
    bundle = meter_bundle([])
    peers = bundle.participants
    ex = make(
        [
            meter_entry("net-a", peers[0].address, "Netmeter", BRIDGE_1),
            meter_entry("net-b", peers[1].address, "Netmeter", BRIDGE_2),
        ]
    )
    a, b, _ = ex.peers
    supply = total_money(ex)
    trade(ex, a, b, 1000)
    send(ex, BRIDGE_1, *around_slot(meter(ex, "net-a"), (0, 666_800), (0, 667_900)))
    send(ex, BRIDGE_2, *around_slot(meter(ex, "net-b", BRIDGE_2), (271_000, 0), (271_100, 0)))
    (r,) = settle(ex)
    assert (r.seller_start_wh, r.seller_end_wh) == (-666_800, -667_900)
    assert (r.buyer_start_wh, r.buyer_end_wh) == (271_000, 271_100)
    assert (r.delivered_wh, r.fine_mc, r.status) == (1000, 0, DeliveryStatus.DELIVERED)
    assert (r.paid_mc, r.taken_wh) == (PRICE, 100)
    # The seller's 100 Wh surplus and the 900 Wh the buyer did not take go to the pool.
    assert (r.seller_pool_wh, r.buyer_pool_wh) == (100, 900)
    assert total_money(ex) == supply


# --- the pure function -----------------------------------------------------------------------


def test_payments_never_exceed_what_the_payer_can_spend() -> None:
    from gridchain.market.accounts import Account
    from gridchain.market.orders import Contract

    seller, buyer, pool = b"\x01" * 20, b"\x02" * 20, b"\x03" * 20
    contract = Contract(
        1, 1, 5, seller, buyer, b"\x00" * 32, b"\x00" * 32, 1000, 1000, 1, 0, 1, 0, 0
    )
    result = settle_slot(
        [SettleItem(contract, int(Device.PV), int(Device.LOAD))],
        {(buyer, int(Side.BUY), int(Device.LOAD)): GroupMetering(0, 5000, 5000, Metering.COMPLETE)},
        {seller: Account(), buyer: Account(1, 0, 1), pool: Account()},
        pool_account=pool,
        r_buy=R_BUY,
        r_sell=R_SELL,
        penalty_mc_per_kwh=PENALTY,
        height=9,
        timestamp_ms=0,
    )
    (r,) = result.receipts
    assert (r.fine_mc, r.fine_paid_mc) == (100_000, 0)  # the seller has nothing
    # The buyer owes the pool 900 mc for 5000 Wh but has only the 1 mc its escrow released.
    assert (r.buyer_pool_wh, r.buyer_pool_mc) == (-5000, -1)
    assert result.accounts[buyer] == Account(0, 0, 0)
    assert result.accounts[pool] == Account(1, 0, 0)
    assert all(a.balance_mc >= a.locked_mc >= 0 for a in result.accounts.values())


def test_pro_rata_rule() -> None:
    assert pro_rata(1001, [600, 900]) == [400, 601]
    assert pro_rata(2, [1, 1, 1]) == [1, 1, 0]  # ties go to the earlier (lower trade id)
    with pytest.raises(PoolInputError):
        pro_rata(1, [0, 0])


# --- property: money is conserved and nothing goes negative ----------------------------------

_order = st.tuples(
    st.integers(0, 2),  # seller
    st.integers(0, 2),  # buyer
    st.integers(1, 3000),  # quantity
    st.integers(1, 60_000),  # price: five buys of 3000 Wh stay within a balance
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    orders=st.lists(_order, min_size=1, max_size=5),
    pv=st.none() | st.integers(0, 5000),
    load=st.none() | st.integers(0, 5000),
    net=st.none() | st.integers(-5000, 5000),
)
def test_money_is_conserved_and_never_negative(
    orders: list[tuple[int, int, int, int]], pv: int | None, load: int | None, net: int | None
) -> None:
    ex = make()
    peers = ex.peers
    txs = []
    for seller, buyer, quantity, price in orders:
        if seller == buyer:
            continue
        sell_device = Device.PV if seller == 0 else Device.BATTERY
        buy_device = Device.LOAD if buyer == 1 else Device.EV
        txs.append(ex.place(peers[seller], Side.SELL, price, quantity, device=int(sell_device)))
        txs.append(ex.place(peers[buyer], Side.BUY, price, quantity, device=int(buy_device)))
    if txs:
        ex.block(txs, EARLY_MS)
    supply = get_supply(ex.state)
    assert total_money(ex) == supply
    if pv is not None:
        send(ex, BRIDGE_1, *around_slot(meter(ex, "pv-a"), (0, 0), (0, pv)))
    if load is not None:
        send(ex, BRIDGE_1, *around_slot(meter(ex, "load-b"), (0, 0), (load, 0)))
    if net is not None:
        end = (net, 0) if net >= 0 else (0, -net)
        send(ex, BRIDGE_2, *around_slot(meter(ex, "net-c", BRIDGE_2), (0, 0), end))
    settle(ex)
    settle(ex, SETTLE_MS + Q)
    accounts = all_accounts(ex.state)
    assert sum(a.balance_mc for a in accounts.values()) == supply
    assert all(a.balance_mc >= a.locked_mc for a in accounts.values())
    # Gate closure expired every open order and settlement released every contract's escrow.
    assert all(a.locked_mc == 0 for a in accounts.values())
    assert all(c.status == ContractStatus.SETTLED for c in contracts(ex.state, slot=SLOT))
    delivered_by: dict[tuple[bytes, int], int] = {}
    metered_by: dict[tuple[bytes, int], int] = {}
    for r in receipts(ex.state):
        assert r.paid_mc + r.released_mc == r.escrow_mc
        assert r.delivered_wh + r.shortfall_wh == r.quantity_wh
        assert r.fine_paid_mc <= r.fine_mc
        device = (r.seller, r.seller_device)
        delivered_by[device] = delivered_by.get(device, 0) + r.delivered_wh
        metered_by[device] = r.seller_metered_wh
    # Energy: no seller device is credited with more than its meter measured in the slot.
    for device, delivered in delivered_by.items():
        assert delivered <= metered_by[device]
    assert address_of(BRIDGE_1.public_key) not in {r.seller for r in receipts(ex.state)}
