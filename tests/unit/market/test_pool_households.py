"""Every household in the real-time pool (issue 14 item 6, ADR 0041).

Why: a household that signed no contract still imports and exports through its meters; with
only contract holders pooled, the pool's prices saw a fraction of the community and those kWh
were paid for nowhere on chain.  These tests pin what a household outside the contracts pays or
is paid, that the prices come from the whole community, that a net meter is not added to the
devices behind it, that C&D energy is paid once (by C&D settlement), and that money is conserved
with and without contracts.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridchain.market.accounts import get_supply
from gridchain.market.cd_settlement import cd_receipts
from gridchain.market.pool import sdr_prices
from gridchain.market.pruning import RETAIN_MS
from gridchain.market.settlement import Metering, receipts
from gridchain.market.slot_settlement import (
    PoolReceipt,
    pool_receipts,
    pool_slots,
    settled_before,
)
from gridchain.node.operator_stats import slot_figures
from gridchain.protocol.block import ScheduleEntry
from gridchain.protocol.encoding import decode
from gridchain.protocol.tx import CDKind, Device
from tests.helpers import GENESIS_TIME_MS, addr, all_accounts, cd_meter_id
from tests.unit.market.conftest import BALANCE_MC, SLOT, START_MS, Exchange
from tests.unit.market.metering import BRIDGE_1, BRIDGE_2, GOVERNANCE_MC, meter_entry
from tests.unit.market.test_cd_settlement import Meter, _decide, _pool_funded_chain
from tests.unit.market.test_settlement import (
    R_BUY,
    R_SELL,
    SETTLE_MS,
    around_slot,
    balance,
    governance,
    make,
    meter,
    send,
    settle,
    total_money,
    trade,
)


def _ceil(n: int, d: int) -> int:
    return -(-n // d)


def _readings(ex: Exchange, pv: int, load: int, net: int) -> None:
    """pv-a exports ``pv``, load-b imports ``load``, net-c's net register rises by ``net``."""
    net_end = (net, 0) if net >= 0 else (0, -net)
    send(
        ex,
        BRIDGE_1,
        *around_slot(meter(ex, "pv-a"), (0, 0), (0, pv)),
        *around_slot(meter(ex, "load-b"), (0, 0), (load, 0)),
    )
    send(ex, BRIDGE_2, *around_slot(meter(ex, "net-c", BRIDGE_2), (0, 0), net_end))


def test_households_without_contracts_clear_in_the_pool_at_the_communitys_sdr() -> None:
    ex = make()
    a, b, c = ex.peers
    supply = total_money(ex)
    _readings(ex, pv=600, load=1000, net=400)
    settle(ex)
    assert receipts(ex.state) == []  # no contract in the slot...
    (pool,) = pool_slots(ex.state)  # ...and still a pool
    prices = sdr_prices(600, 1400, R_BUY, R_SELL)
    assert (pool.slot, pool.tsp_wh, pool.tbp_wh) == (SLOT, 600, 1400)
    assert (pool.p_sell_mc_per_kwh, pool.p_buy_mc_per_kwh) == (
        prices.p_sell_mc_per_kwh,
        prices.p_buy_mc_per_kwh,
    )
    assert (pool.contracts, pool.households) == (0, 3)
    assert pool.grid_import_wh == 800
    got = {r.participant: r for r in pool_receipts(ex.state, slot=SLOT)}
    income = 600 * prices.p_sell_mc_per_kwh // 1000
    cost_b = _ceil(1000 * prices.p_buy_mc_per_kwh, 1000)
    cost_c = _ceil(400 * prices.p_buy_mc_per_kwh, 1000)
    assert (got[addr(a)].net_wh, got[addr(a)].amount_mc, got[addr(a)].paid_mc) == (
        600,
        income,
        income,
    )
    assert (got[addr(b)].net_wh, got[addr(b)].paid_mc) == (-1000, -cost_b)
    assert (got[addr(c)].net_wh, got[addr(c)].paid_mc) == (-400, -cost_c)
    # The internal energy (600 Wh) is shared by demand: 1000 : 400.
    assert (got[addr(b)].internal_wh, got[addr(c)].internal_wh) == (429, 171)
    assert got[addr(c)].metering == int(Metering.COMPLETE)
    assert balance(ex, a) == BALANCE_MC + income
    assert balance(ex, b) == BALANCE_MC - cost_b
    assert balance(ex, c) == BALANCE_MC - cost_c
    assert balance(ex, governance(ex)) == GOVERNANCE_MC + cost_b + cost_c - income
    assert pool.residual_mc >= 0
    assert total_money(ex) == supply == get_supply(ex.state)
    # Each household can find its own receipts.
    assert pool_receipts(ex.state, party=addr(b)) == [got[addr(b)]]


def test_contract_parties_keep_their_contract_positions_and_share_the_pool_prices() -> None:
    ex = make()
    a, b, c = ex.peers
    trade(ex, a, b, 1000)
    _readings(ex, pv=1000, load=1000, net=500)
    (r,) = settle(ex)
    (pool,) = pool_slots(ex.state)
    # Only net-c's household is outside the contract: SDR = 0, it pays retail.
    assert (pool.tsp_wh, pool.tbp_wh, pool.contracts, pool.households) == (0, 500, 1, 1)
    assert (r.pool_p_buy_mc_per_kwh, pool.p_buy_mc_per_kwh) == (R_BUY, R_BUY)
    assert (r.seller_pool_wh, r.buyer_pool_wh) == (0, 0)
    (household,) = pool_receipts(ex.state)
    assert household.participant == addr(c)
    assert household.paid_mc == -_ceil(500 * R_BUY, 1000)
    assert pool_receipts(ex.state, party=addr(a)) == []


def test_a_net_meter_is_the_household_and_its_devices_are_not_added_again() -> None:
    base = make()
    a, b, c = base.peers
    ex = make(
        [
            meter_entry("net-c", c.address, "Netmeter", BRIDGE_2),
            meter_entry("pv-c", c.address, "PV", BRIDGE_2),
            meter_entry("pv-a", a.address, "PV", BRIDGE_1),
        ]
    )
    send(
        ex,
        BRIDGE_2,
        *around_slot(meter(ex, "net-c", BRIDGE_2), (0, 0), (400, 0)),
        *around_slot(meter(ex, "pv-c", BRIDGE_2), (0, 0), (0, 1000)),
    )
    send(ex, BRIDGE_1, *around_slot(meter(ex, "pv-a"), (0, 0), (0, 300)))
    settle(ex)
    got = {r.participant: r for r in pool_receipts(ex.state)}
    # c's PV is behind its net meter: the net meter's 400 Wh import is the household.
    assert got[addr(c)].net_wh == -400
    assert (got[addr(c)].start_wh, got[addr(c)].end_wh) == (0, 400)
    # a has dedicated meters only: their sum.
    assert got[addr(a)].net_wh == 300
    assert addr(b) not in got  # b has no meter here


def test_missing_readings_count_as_nothing_and_the_receipt_says_so() -> None:
    ex = make()
    a, b, _ = ex.peers
    # pv-a reads only up to the slot's middle; load-b sends nothing.
    chain = meter(ex, "pv-a")
    send(
        ex,
        BRIDGE_1,
        chain.reading(START_MS - 900_000, START_MS, 0, 0),
        chain.reading(START_MS, START_MS + 450_000, 0, 200),
        at=START_MS + 450_000,
    )
    settle(ex)
    (r,) = pool_receipts(ex.state)
    assert (r.participant, r.net_wh, r.metering) == (
        addr(a),
        200,
        int(Metering.MISSING_READINGS),
    )
    assert pool_receipts(ex.state, party=addr(b)) == []


def test_every_slot_settles_once_and_pruning_archives_the_pool_records() -> None:
    ex = make()
    _readings(ex, pv=600, load=1000, net=0)
    settle(ex)
    assert settled_before(ex.bundle.genesis, ex.state) == SLOT + 1
    settle(ex, SETTLE_MS + 1)  # a second block of the same time settles nothing again
    assert len(pool_receipts(ex.state)) == 2
    assert len(pool_slots(ex.state)) == 1
    later = SETTLE_MS + RETAIN_MS + 900_000
    execution = ex.app.execute_block(ex.state, [], ex.ctx(later))
    ex.state.apply(execution.writes)
    archived = [decode(v, PoolReceipt) for k, v in execution.archived.items() if k[:4] == b"plr:"]
    assert {r.net_wh for r in archived} == {600, -1000}
    assert pool_receipts(ex.state) == []
    assert pool_slots(ex.state) == []
    assert any(k.startswith(b"pls:") for k in execution.archived)


def test_cd_energy_is_paid_once_by_cd_settlement_and_the_rest_in_the_pool() -> None:
    """Peer 0's EV charges 500 Wh under a decided interval (C&D settlement pays for it); peer
    2's EV meter, with no request, imports 300 Wh in the same slot: only that is pooled."""
    c = _pool_funded_chain(500_000)
    owner = c.bundle.participants[0]
    ev = Meter(c, 0, cd_meter_id(0, Device.EV))
    other = Meter(c, 2, cd_meter_id(2, Device.EV))
    tx = c.request(
        owner,
        CDKind.CHARGE,
        arrival_ms=GENESIS_TIME_MS,
        departure_ms=c.at(2, 0),
        energy_wh=500,
        max_rate_w=3_000,
    )
    c.build(c.at(0), [tx, ev.read(c.at(0, 0)), other.read(c.at(0, 0))])
    _decide(c, c.at(0, 2), ScheduleEntry(tx.hash(), 3_000))
    c.build(c.at(1, 2), [ev.read(c.at(1, 0)), other.read(c.at(1, 0))])
    # Interval 1 is [10, 20) minutes; slot 1 (15-30 min) holds its second half.
    c.build(c.at(2, 2), [ev.read(c.at(2, 0), imported=500), other.read(c.at(2, 0), imported=100)])
    c.build(c.at(3, 2), [ev.read(c.at(3, 0)), other.read(c.at(3, 0), imported=200)])
    slot_1_end = GENESIS_TIME_MS + 1_800_000
    c.build(slot_1_end + 300_000)  # slot 1's grace is over; interval 1 settled long before
    (cd,) = cd_receipts(c.state, tx.hash())
    assert cd.metered_wh == 500
    mine = pool_receipts(c.state, party=addr(owner))
    assert mine == []  # the window's 500 Wh are C&D's, nothing else crossed the EV meter
    (theirs,) = pool_receipts(c.state, party=addr(c.bundle.participants[2]))
    assert theirs.net_wh == -300
    assert theirs.cd_wh == 0


_positions = st.lists(st.integers(-3000, 3000), min_size=3, max_size=3)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    positions=_positions,
    contract=st.booleans(),
)
def test_money_is_conserved_with_and_without_contracts(
    positions: list[int], contract: bool
) -> None:
    ex = make()
    a, b, _ = ex.peers
    if contract:
        trade(ex, a, b, 700)
    pv, load, net = abs(positions[0]), abs(positions[1]), positions[2]
    _readings(ex, pv=pv, load=load, net=net)
    supply = total_money(ex)
    settle(ex)
    accounts = all_accounts(ex.state)
    assert sum(x.balance_mc for x in accounts.values()) == supply == get_supply(ex.state)
    assert all(x.balance_mc >= x.locked_mc for x in accounts.values())
    for pool in pool_slots(ex.state):
        assert R_SELL <= pool.p_sell_mc_per_kwh <= pool.p_buy_mc_per_kwh <= R_BUY
        assert pool.residual_mc >= 0
    for r in pool_receipts(ex.state):
        # Paid never exceeds assessed, in the assessed direction.
        assert abs(r.paid_mc) <= abs(r.amount_mc)
        assert r.paid_mc * r.amount_mc >= 0
        assert (r.net_wh > 0) == (r.amount_mc > 0) or r.amount_mc == 0


def test_the_operator_pages_slot_figures_show_the_pool_of_a_slot_without_trades() -> None:
    ex = make()
    _readings(ex, pv=600, load=1000, net=0)
    settle(ex)
    (pool,) = pool_slots(ex.state)
    figures = slot_figures(ex.state, ex.state, SLOT, 900_000).settlement
    assert figures.receipts == 0
    assert (figures.pool_p_sell_mc_per_kwh, figures.pool_p_buy_mc_per_kwh) == (
        pool.p_sell_mc_per_kwh,
        pool.p_buy_mc_per_kwh,
    )
