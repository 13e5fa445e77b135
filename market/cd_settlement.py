"""Settlement of C&D energy: each decided interval, each request, against its meter (ADR 0030).

When a decided interval ``j`` has ended and the readings' grace period is over (start of
``j + 1`` + ``settlement_grace_ms`` <= block time), the first block past that point settles
every entry of ``j``'s decision, exactly once, in :meth:`market.app.Application.begin_block`:

* **Energy.** The request's meter (``CDRecord.meter_id``) is read over the interval's window
  [start of j, start of j + 1] of block time with :func:`market.settlement.meters_metering`,
  the reader contract settlement uses: the import register for a charge, the export register
  for a discharge; missing readings count as nothing and the receipt says so.
* **Scheduled energy** is what the setpoint gives over that window:
  ``|rate_w| * interval_ms // 3_600_000`` Wh (on a chain in real time, ``interval_ms`` is
  ``schedule_interval_minutes`` minutes, so this is the rate times the interval's hours).
* **Price.** The interval's C&D price (:mod:`market.cd_pricing`: the retail tariff of the hour
  it starts in).  A charge pays ``price * metered // 1000`` to the pool account; a discharge
  is paid that much by it.
* **Deviation** = metered - scheduled.  Within ``max(cd_tolerance_wh, scheduled *
  cd_tolerance_permille // 1000)`` it costs nothing; beyond, the excess pays genesis
  ``penalty_mc_per_kwh`` to the pool account (the community's grid connection absorbed the
  imbalance).

Every payment is a capped transfer (:func:`market.settlement.move_capped`: never more than the
payer can spend; the receipt records assessed and paid) between the owner and the pool account,
which is the governance account as in contract settlement, so the money supply is unchanged.
Intervals nobody decided have no setpoints and no receipts.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from gridchain.genesis.schema import ChainParams, Genesis
from gridchain.market.accounts import Account, get_account, put_account
from gridchain.market.cd_pricing import CDPrices
from gridchain.market.cd_requests import IntervalClock, get_request
from gridchain.market.cd_schedule import DECISION_PREFIX, Decision, decision_key
from gridchain.market.chain_params import params_at
from gridchain.market.orders import payment_for
from gridchain.market.settlement import meters_metering, move_capped
from gridchain.market.state import Overlay, StateReader
from gridchain.protocol.address import address_of
from gridchain.protocol.encoding import I64, U8, U64, Bytes20, Bytes32, Record, decode, register
from gridchain.protocol.meter import MeterId
from gridchain.protocol.tx import Side

CD_RECEIPT_PREFIX = b"cdrc:"
#: The next interval that may still have a decision to settle.
CD_SETTLE_CURSOR_KEY = b"meta:cdsettle"
HOUR_MS = 3_600_000


@register(0x6E)
@dataclass(frozen=True, slots=True)
class CDReceipt(Record):
    """One request's settlement for one decided interval (all integers; ADR 0030)."""

    request_id: Bytes32
    interval: U64
    owner: Bytes20
    meter_id: MeterId
    kind: U8
    device: U8
    start_ms: U64
    end_ms: U64
    #: The decided rate (negative = discharge) and the energy it gives over the window.
    setpoint_w: I64
    scheduled_wh: U64
    #: The meter's register (import for a charge, export for a discharge) at both ends.
    start_wh: I64
    end_wh: I64
    metered_wh: U64
    metering: U8
    deviation_wh: I64
    tolerance_wh: U64
    price_mc_per_kwh: U64
    #: Charge: what the owner owes the pool; discharge: what the pool owes the owner.
    amount_mc: U64
    paid_mc: U64
    penalty_mc: U64
    penalty_paid_mc: U64
    height: U64
    settled_ms: U64


@dataclass(frozen=True, slots=True)
class CDTerms:
    """The genesis numbers C&D settlement uses."""

    interval_ms: int
    tolerance_permille: int
    tolerance_wh: int
    penalty_mc_per_kwh: int

    @classmethod
    def of(cls, p: ChainParams) -> CDTerms:
        """The terms of the parameters in force (market/chain_params.py)."""
        return cls(
            p.schedule_interval_ms, p.cd_tolerance_permille, p.cd_tolerance_wh, p.penalty_mc_per_kwh
        )

    def scheduled_wh(self, rate_w: int) -> int:
        return abs(rate_w) * self.interval_ms // HOUR_MS

    def tolerance(self, scheduled_wh: int) -> int:
        return max(self.tolerance_wh, scheduled_wh * self.tolerance_permille // 1000)

    def penalty(self, deviation_wh: int, tolerance_wh: int) -> int:
        excess = max(0, abs(deviation_wh) - tolerance_wh)
        return payment_for(self.penalty_mc_per_kwh, excess)


def settle_entry(
    accounts: dict[bytes, Account],
    terms: CDTerms,
    *,
    pool_account: bytes,
    owner: bytes,
    is_charge: bool,
    rate_w: int,
    metered_wh: int,
    price_mc_per_kwh: int,
) -> tuple[int, int, int, int, int, int, int]:
    """Move one entry's money in ``accounts`` (pure); return (scheduled, deviation, tolerance,
    amount, paid, penalty, penalty paid)."""
    scheduled = terms.scheduled_wh(rate_w)
    deviation = metered_wh - scheduled
    tolerance = terms.tolerance(scheduled)
    amount = payment_for(price_mc_per_kwh, metered_wh)
    if is_charge:
        paid = move_capped(accounts, owner, pool_account, amount)
    else:
        paid = move_capped(accounts, pool_account, owner, amount)
    penalty = terms.penalty(deviation, tolerance)
    penalty_paid = move_capped(accounts, owner, pool_account, penalty)
    return scheduled, deviation, tolerance, amount, paid, penalty, penalty_paid


# --- the state side --------------------------------------------------------------------------


def receipt_key(request_id: bytes, interval: int) -> bytes:
    return CD_RECEIPT_PREFIX + request_id + interval.to_bytes(8, "big")


def cd_receipts(state: StateReader, request_id: bytes) -> list[CDReceipt]:
    """A request's receipts in interval order."""
    return [decode(raw, CDReceipt) for _, raw in state.scan(CD_RECEIPT_PREFIX + request_id)]


def _cursor(state: StateReader) -> int:
    raw = state.get(CD_SETTLE_CURSOR_KEY)
    return 0 if raw is None else int.from_bytes(raw, "big")


def _decisions_from(state: StateReader, interval: int) -> Iterator[Decision]:
    for _, raw in state.scan_from(DECISION_PREFIX, decision_key(interval), inclusive=True):
        yield decode(raw, Decision)


def settle_cd_due(
    genesis: Genesis, view: Overlay, height: int, timestamp_ms: int
) -> list[CDReceipt]:
    """Settle every decided interval whose window + grace is over; return the receipts.

    A cursor (the next interval that may need settling) and the ordered decision keys make each
    interval settle once and keep a block's cost to one short scan when nothing is due.
    """
    clock = IntervalClock.of(genesis)
    grace = genesis.params.settlement_grace_ms
    out: list[CDReceipt] = []
    cursor = _cursor(view)
    while True:
        decision = next(_decisions_from(view, cursor), None)
        if decision is None or clock.start_ms(decision.interval + 1) + grace > timestamp_ms:
            break
        out.extend(
            _settle_decision(
                genesis, clock, view, decision, height=height, timestamp_ms=timestamp_ms
            )
        )
        cursor = decision.interval + 1
        view.put(CD_SETTLE_CURSOR_KEY, cursor.to_bytes(8, "big"))
    return out


def _settle_decision(
    genesis: Genesis,
    clock: IntervalClock,
    view: Overlay,
    decision: Decision,
    *,
    height: int,
    timestamp_ms: int,
) -> list[CDReceipt]:
    params = params_at(view, genesis, height)
    terms = CDTerms.of(params)
    j = decision.interval
    start, end = clock.start_ms(j), clock.start_ms(j + 1)
    price = CDPrices(clock, params.tariffs).price_at(j)
    pool_account = address_of(bytes.fromhex(genesis.governance_public_key))
    before: dict[bytes, Account] = {pool_account: get_account(view, pool_account)}
    accounts = dict(before)
    out = []
    for entry in decision.entries:
        record = get_request(view, entry.request_id)
        # Records are kept for ever; a decision names only requests the chain accepted.
        assert record is not None
        if record.owner not in before:
            before[record.owner] = accounts[record.owner] = get_account(view, record.owner)
        side = Side.BUY if record.is_charge else Side.SELL
        metering = meters_metering(
            view, [record.meter_id], int(side), net=False, start_ms=start, end_ms=end
        )
        scheduled, deviation, tolerance, amount, paid, penalty, penalty_paid = settle_entry(
            accounts,
            terms,
            pool_account=pool_account,
            owner=record.owner,
            is_charge=record.is_charge,
            rate_w=entry.rate_w,
            metered_wh=metering.metered_wh,
            price_mc_per_kwh=price,
        )
        receipt = CDReceipt(
            request_id=entry.request_id,
            interval=j,
            owner=record.owner,
            meter_id=record.meter_id,
            kind=record.kind,
            device=record.device,
            start_ms=start,
            end_ms=end,
            setpoint_w=entry.rate_w,
            scheduled_wh=scheduled,
            start_wh=metering.start_wh,
            end_wh=metering.end_wh,
            metered_wh=metering.metered_wh,
            metering=int(metering.metering),
            deviation_wh=deviation,
            tolerance_wh=tolerance,
            price_mc_per_kwh=price,
            amount_mc=amount,
            paid_mc=paid,
            penalty_mc=penalty,
            penalty_paid_mc=penalty_paid,
            height=height,
            settled_ms=timestamp_ms,
        )
        view.put(receipt_key(entry.request_id, j), receipt.encode())
        out.append(receipt)
    for address in sorted(accounts):
        if accounts[address] != before[address]:
            put_account(view, address, accounts[address])
    return out
