"""C&D requests name their meter, are planned within their limit price, and are settled
against the meter's readings interval by interval (issue 14 item 3, ADR 0030)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import pytest

from gridchain.genesis.schema import parse_genesis
from gridchain.market.accounts import get_account, get_supply
from gridchain.market.app import Application, BlockContext
from gridchain.market.base_load import base_load_at
from gridchain.market.cd_requests import get_request
from gridchain.market.cd_schedule import (
    due_interval,
    get_decision,
    schedule_benefit,
)
from gridchain.market.cd_settlement import CDReceipt, cd_receipts
from gridchain.market.errors import (
    ApplicationError,
    CDLimitPriceError,
    CDMeterError,
    ScheduleRejectedError,
    UnregisteredMeterError,
)
from gridchain.market.settlement import Metering
from gridchain.protocol.block import ScheduleEntry
from gridchain.protocol.meter import GENESIS_READING_HASH, ReadingRecord, sign_reading
from gridchain.protocol.tx import CDKind, CDRequest, Device, MeterReadings, Transaction
from tests.helpers import GENESIS_TIME_MS, addr, all_accounts, cd_meter_id, signed
from tests.unit.market.test_cd import Chain, make_chain

#: Hour 0 costs 400,000 mc/kWh, every other hour 100,000 (intervals 0-5 are hour 0).
SPLIT_TARIFFS = [
    {"start_hour": 0, "end_hour": 1, "retail_mc_per_kwh": 400_000, "feed_in_mc_per_kwh": 50_000},
    {"start_hour": 1, "end_hour": 24, "retail_mc_per_kwh": 100_000, "feed_in_mc_per_kwh": 50_000},
]
HOUR_0_PRICE = 180_000  # the default tariffs' price from 0 to 7 h


def _body(
    kind: CDKind, device: Device, meter_id: str, *, limit: int, energy_wh: int = 1_000
) -> CDRequest:
    return CDRequest(
        int(kind),
        int(device),
        GENESIS_TIME_MS,
        GENESIS_TIME_MS + 12 * 600_000,
        energy_wh,
        3_000,
        limit,
        meter_id,
    )


def _refused(c: Chain, who: int, body: CDRequest) -> Exception:
    tx = signed(c.bundle.participants[who], c.bundle.genesis.chain_id, 0, body)
    before = c.state.root()
    with pytest.raises(ApplicationError) as caught:
        c.app.check_tx(tx, c.state, BlockContext(1, GENESIS_TIME_MS + 1000, b""))
    assert c.state.root() == before
    return caught.value


# --- the meter a request names --------------------------------------------------------------


def test_a_request_names_a_registered_meter_of_its_owner_and_device() -> None:
    c = make_chain()
    ev = _body(CDKind.CHARGE, Device.EV, "nobody-ev", limit=250_000)
    assert isinstance(_refused(c, 0, ev), UnregisteredMeterError)
    theirs = dataclasses.replace(ev, meter_id=cd_meter_id(1, Device.EV))
    assert isinstance(_refused(c, 0, theirs), CDMeterError)
    wrong_type = dataclasses.replace(ev, meter_id=cd_meter_id(0, Device.BATTERY))
    error = _refused(c, 0, wrong_type)
    assert isinstance(error, CDMeterError)
    assert "EV meter" in str(error)
    battery = _body(CDKind.DISCHARGE, Device.BATTERY, cd_meter_id(0, Device.EV), limit=0)
    assert isinstance(_refused(c, 0, battery), CDMeterError)
    # The right meter opens the request and is kept in its record.
    good = c.request(
        c.bundle.participants[0],
        CDKind.CHARGE,
        arrival_ms=GENESIS_TIME_MS,
        departure_ms=c.at(6, 0),
        energy_wh=1_000,
        max_rate_w=3_000,
    )
    c.build(c.at(0), [good])
    record = get_request(c.state, good.hash())
    assert record is not None
    assert record.meter_id == cd_meter_id(0, Device.EV)


# --- the limit price ------------------------------------------------------------------------


def _rates(c: Chain, request_id: bytes, intervals: range) -> dict[int, int]:
    """Run the chain through ``intervals`` (one block at the start of each) and collect the
    request's decided rate in each interval (0 where it was not listed)."""
    out = {}
    for k in intervals:
        c.build(c.at(k - 1, 2))
        decision = get_decision(c.state, k)
        rates = {} if decision is None else {e.request_id: e.rate_w for e in decision.entries}
        out[k] = rates.get(request_id, 0)
    return out


@pytest.mark.parametrize("scheduler", ["uncontrolled", "online"])
def test_charging_is_never_planned_in_an_interval_priced_above_the_limit(scheduler: str) -> None:
    c = make_chain(tariffs=SPLIT_TARIFFS, scheduler=scheduler)
    peer = c.bundle.participants[0]
    body = _body(CDKind.CHARGE, Device.EV, cd_meter_id(0, Device.EV), limit=200_000)
    tx = signed(peer, c.bundle.genesis.chain_id, 0, body)
    c.nonces[addr(peer)] = 1
    c.build(c.at(0), [tx])
    rates = _rates(c, tx.hash(), range(1, 12))
    assert all(rates[k] == 0 for k in range(1, 6)), rates  # hour 0: 400,000 > 200,000
    assert sum(rates.values()) == 6_000  # 1,000 Wh = 6,000 W-intervals, all after hour 0
    record = get_request(c.state, tx.hash())
    assert record is not None
    assert record.residual_units == 0


def test_discharging_is_only_planned_where_the_price_reaches_the_limit() -> None:
    c = make_chain(tariffs=SPLIT_TARIFFS, scheduler="uncontrolled")
    peer = c.bundle.participants[1]
    body = _body(CDKind.DISCHARGE, Device.BATTERY, cd_meter_id(1, Device.BATTERY), limit=300_000)
    tx = signed(peer, c.bundle.genesis.chain_id, 0, body)
    c.build(c.at(0), [tx])
    due = due_interval(c.bundle.genesis, c.state, c.at(0, 2))  # interval 1: 400,000 >= limit
    assert due is not None
    assert due.bounds == ((0, 3_000),)
    rates = _rates(c, tx.hash(), range(1, 6))  # uncontrolled: discharges nothing
    assert set(rates.values()) == {0}
    due = due_interval(c.bundle.genesis, c.state, c.at(5, 2))  # interval 6: 100,000 < limit
    assert due is not None
    assert due.bounds == ((0, 0),)
    hour_1 = BlockContext(c.height + 1, c.at(5, 2), b"")
    with pytest.raises(ScheduleRejectedError, match="limit price"):
        c.app.execute_block(c.state, [], hour_1, schedule=(ScheduleEntry(tx.hash(), -1),))


def test_a_validator_refuses_charging_above_the_limit_and_admission_refuses_the_impossible() -> (
    None
):
    c = make_chain(tariffs=SPLIT_TARIFFS)
    peer = c.bundle.participants[0]
    meter = cd_meter_id(0, Device.EV)
    # 6 allowed intervals at 3 kW hold 3,000 Wh; 4,000 would fit the whole window but not them.
    too_much = _body(CDKind.CHARGE, Device.EV, meter, limit=200_000, energy_wh=4_000)
    assert isinstance(_refused(c, 0, too_much), CDLimitPriceError)
    never = _body(CDKind.DISCHARGE, Device.BATTERY, cd_meter_id(0, Device.BATTERY), limit=500_000)
    assert isinstance(_refused(c, 0, never), CDLimitPriceError)
    tx = signed(
        peer, c.bundle.genesis.chain_id, 0, _body(CDKind.CHARGE, Device.EV, meter, limit=200_000)
    )
    c.build(c.at(0), [tx])
    ctx = BlockContext(c.height + 1, c.at(0, 2), b"")
    assert c.app.build_block(c.state, [], ctx).schedule == (ScheduleEntry(tx.hash(), 0),)
    with pytest.raises(ScheduleRejectedError, match="limit price"):
        c.app.execute_block(c.state, [], ctx, schedule=(ScheduleEntry(tx.hash(), 3_000),))


# --- settlement -----------------------------------------------------------------------------


@dataclass
class Meter:
    """A meter's reading chain, signed by its bridge (here the owner's own key)."""

    c: Chain
    owner: int
    meter_id: str
    sequence: int = 0
    prev: bytes = GENESIS_READING_HASH
    import_wh: int = 0
    export_wh: int = 0
    end_ms: int = field(default=GENESIS_TIME_MS - 1000)

    def read(self, until_ms: int, *, imported: int = 0, exported: int = 0) -> Transaction:
        self.import_wh += imported
        self.export_wh += exported
        record = ReadingRecord(
            self.meter_id,
            self.end_ms,
            until_ms,
            self.import_wh,
            self.export_wh,
            0,
            2300,
            0,
            self.sequence,
            self.prev,
        )
        self.sequence += 1
        self.prev = record.hash()
        self.end_ms = until_ms
        key = self.c.bundle.participants[self.owner]
        reading = sign_reading(key.key, self.c.bundle.genesis.chain_id, record)
        nonce = self.c.nonces.get(addr(key), 0)
        self.c.nonces[addr(key)] = nonce + 1
        return signed(key, self.c.bundle.genesis.chain_id, nonce, MeterReadings((reading,)))


def _pool_funded_chain(pool_mc: int, **params: Any) -> Chain:
    """A test chain whose pool (governance) account holds ``pool_mc`` from genesis."""
    plain = make_chain(**params)
    doc = plain.bundle.genesis.model_dump(mode="json")
    doc["balances"].append({"address": plain.bundle.governance.address, "amount_mc": pool_mc})
    bundle = dataclasses.replace(plain.bundle, genesis=parse_genesis(doc))
    app = Application(bundle.genesis)
    return Chain(bundle, app, app.genesis_state())


def _decide(c: Chain, at_ms: int, entry: ScheduleEntry) -> None:
    """Commit a block at ``at_ms`` whose schedule is ``entry`` (any valid rate, not only the
    scheduler's), with the benefit a validator recomputes."""
    due = due_interval(c.bundle.genesis, c.state, at_ms)
    assert due is not None
    base = base_load_at(c.bundle.genesis, due.interval)
    _, benefit = schedule_benefit(base, [entry.rate_w], due.previous_load_w)
    ctx = BlockContext(c.height + 1, at_ms, b"")
    executed = c.app.execute_block(c.state, [], ctx, schedule=(entry,), benefit=benefit)
    c.state.apply(executed.writes)
    c.height += 1
    c.last_ms = at_ms


def _settle_one_interval(
    kind: CDKind, device: Device, metered_wh: int
) -> tuple[Chain, CDReceipt, Transaction]:
    """A 3 kW request decided for interval 1 (500 Wh in its 10 minutes); the meter reports
    ``metered_wh`` for it; the block after the grace period settles it."""
    c = _pool_funded_chain(500_000)
    who = 0 if kind is CDKind.CHARGE else 1
    peer = c.bundle.participants[who]
    meter = Meter(c, who, cd_meter_id(who, device))
    tx = c.request(
        peer,
        kind,
        arrival_ms=GENESIS_TIME_MS,
        departure_ms=c.at(6, 0),
        energy_wh=2_000,
        max_rate_w=3_000,
        device=device,
    )
    c.build(c.at(0), [tx, meter.read(c.at(0, 0))])
    _decide(c, c.at(0, 2), ScheduleEntry(tx.hash(), 3_000 if kind is CDKind.CHARGE else -3_000))
    c.build(c.at(1, 2), [meter.read(c.at(1, 0))])  # the register at the window's start
    register = {"imported": metered_wh} if kind is CDKind.CHARGE else {"exported": metered_wh}
    c.build(c.at(2, 2), [meter.read(c.at(2, 0), **register)])  # ...and at its end
    assert cd_receipts(c.state, tx.hash()) == []  # the grace period is not over
    supply, total = get_supply(c.state), sum(a.balance_mc for a in all_accounts(c.state).values())
    before = all_accounts(c.state)
    c.build(c.at(2, 300_000))  # start of interval 2 + settlement_grace_ms: interval 1 settles
    (receipt,) = cd_receipts(c.state, tx.hash())
    after = all_accounts(c.state)
    assert get_supply(c.state) == supply
    assert sum(a.balance_mc for a in after.values()) == total  # money only moved
    owner, pool = addr(peer), addr(c.bundle.governance)
    moved = after[owner].balance_mc - before[owner].balance_mc
    assert moved == -(after[pool].balance_mc - before[pool].balance_mc)
    sign = -1 if kind is CDKind.CHARGE else 1
    assert moved == sign * receipt.paid_mc - receipt.penalty_paid_mc
    return c, receipt, tx


def test_charging_is_paid_at_the_intervals_price_from_the_meters_readings() -> None:
    _, receipt, tx = _settle_one_interval(CDKind.CHARGE, Device.EV, 500)
    assert (receipt.request_id, receipt.interval) == (tx.hash(), 1)
    assert (receipt.setpoint_w, receipt.scheduled_wh, receipt.metered_wh) == (3_000, 500, 500)
    assert receipt.metering == int(Metering.COMPLETE)
    assert receipt.price_mc_per_kwh == HOUR_0_PRICE
    assert receipt.amount_mc == receipt.paid_mc == 500 * HOUR_0_PRICE // 1000
    assert (receipt.deviation_wh, receipt.penalty_mc) == (0, 0)


def test_discharging_is_paid_to_the_owner() -> None:
    _, receipt, _ = _settle_one_interval(CDKind.DISCHARGE, Device.BATTERY, 480)
    assert (receipt.setpoint_w, receipt.scheduled_wh, receipt.metered_wh) == (-3_000, 500, 480)
    assert receipt.amount_mc == receipt.paid_mc == 480 * HOUR_0_PRICE // 1000
    assert receipt.deviation_wh == -20
    assert receipt.tolerance_wh == 50  # 10 % of 500 Wh
    assert receipt.penalty_mc == 0


@pytest.mark.parametrize(
    ("metered_wh", "penalty_mc"),
    [
        (550, 0),  # +50 Wh: exactly the tolerance
        (450, 0),  # -50 Wh
        (551, 100),  # 1 Wh beyond: 1 Wh x 100,000 mc/kWh
        (300, 15_000),  # 150 Wh beyond
        (0, 45_000),  # nothing delivered: 450 Wh beyond
    ],
)
def test_the_deviation_penalty_applies_beyond_the_tolerance_only(
    metered_wh: int, penalty_mc: int
) -> None:
    _, receipt, _ = _settle_one_interval(CDKind.CHARGE, Device.EV, metered_wh)
    assert receipt.deviation_wh == metered_wh - 500
    assert receipt.penalty_mc == receipt.penalty_paid_mc == penalty_mc


def test_one_receipt_per_request_and_decided_interval_and_each_interval_once() -> None:
    c, first, tx = _settle_one_interval(CDKind.CHARGE, Device.EV, 500)
    c.build(c.at(2, 300_001))  # a later block of the same interval settles nothing again
    assert cd_receipts(c.state, tx.hash()) == [first]
    c.build(c.at(3, 300_000))  # interval 2 (decided, no readings past the window's start)
    receipts = cd_receipts(c.state, tx.hash())
    assert [r.interval for r in receipts] == [1, 2]
    assert receipts[1].metering == int(Metering.MISSING_READINGS)
    assert receipts[1].metered_wh == 0
    assert receipts[1].penalty_mc == 45_000


def test_payments_are_capped_by_what_the_owner_can_spend() -> None:
    c = make_chain(balance_mc=10_000)
    peer = c.bundle.participants[0]
    meter = Meter(c, 0, cd_meter_id(0, Device.EV))
    tx = c.request(
        peer,
        CDKind.CHARGE,
        arrival_ms=GENESIS_TIME_MS,
        departure_ms=c.at(6, 0),
        energy_wh=2_000,
        max_rate_w=3_000,
    )
    c.build(c.at(0), [tx, meter.read(c.at(0, 0))])
    c.build(c.at(0, 2))
    c.build(c.at(1, 2), [meter.read(c.at(1, 0))])
    c.build(c.at(2, 2), [meter.read(c.at(2, 0), imported=500)])
    c.build(c.at(2, 300_000))
    (receipt,) = cd_receipts(c.state, tx.hash())
    assert receipt.amount_mc == 90_000
    assert receipt.paid_mc == 10_000
    assert get_account(c.state, addr(peer)).balance_mc == 0
