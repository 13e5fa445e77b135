"""Settlement of a delivery slot's contracts against the meters (DESIGN section 6; issue 5).

When a slot has ended and its grace period for late readings is over (``slot end +
settlement_grace_ms <= block time``), the first block past that point settles every contract of
the slot, exactly once, in :meth:`market.app.Application.begin_block` (the state side, with the
slot cursor and the pool receipts of households without contracts, is
:mod:`market.slot_settlement`).  Everything is integer arithmetic on the state and the block
time, so every validator computes the same result.

Metered energy.  A contract's seller sells from one device (its sell order's device) and its
buyer buys for one; the energy of a (participant, side, device) group is the change of the
relevant cumulative register of the participant's meters of that device's types between the
last reading at or before the slot's start and the last reading at or before its end: the export
register for the sell side (PV and external generator meters for PV, EV and battery meters for
their discharge), the import register for the buy side (load meters for Load, EV and battery
meters for their charge).  A participant without such a meter is measured by its net meters, if
any: the net register is import - export (the source's net meter, which runs negative on a
producer), its fall is exported energy and its rise imported energy.  A meter with no reading at or
before the start, or none ending inside the slot, adds nothing: missing readings after the grace
period are zero delivery (a last reading ending before the slot's end counts what it measured,
and the receipt says readings were missing).

Allocation (the rounding rules).  A group's metered energy M is shared among its contracts of the
slot (quantities q_i, total Q): with M >= Q each gets q_i; otherwise each gets floor(M q_i / Q)
and the Wh left over go one each to the largest remainders, ties to the lower trade id
(:func:`market.pool.pro_rata`), so the shares add up to M exactly and never exceed q_i.  The
seller's share is the contract's *delivered* energy; the buyer's share of its own metered import
is shown in the receipt as *taken*.

Money, in this order, each payment capped by what the payer can spend so that no balance ever
goes negative (a capped amount is recorded in the receipt as assessed and paid):

1. Contract: the buyer pays the seller price x delivered // 1000 out of the contract's escrow
   (always enough: delivered <= quantity); the rest of the escrow is released.
2. Fine: a seller that delivered less than contracted pays shortfall x penalty_mc_per_kwh // 1000
   to the *buyer*: the buyer is the one who must now cover the missing energy from the pool at
   the pool's buy price, so the fine compensates the injured party and no money leaves the
   participants.
3. Pool: each party's difference from its contracts clears in the SDR pool
   (:mod:`market.pool`) at the slot's tariffs.  A seller's surplus over its contracts (M - Q when
   positive) is supply; a buyer's position is what the sellers delivered to it minus what it
   imported (positive: it took less than it bought, and the rest flows back to the pool; negative:
   it drew more from the pool).  A seller's shortfall is not a pool position: it is fined, and the
   buyer, having paid only for what was delivered, draws the rest from the pool.  The pool's
   counterparty on chain is the governance account, which stands for the community's grid
   connection (the operator settles imports and exports with the grid off chain): pool buyers pay
   it first, then pool sellers are paid from it.  Every household without a contract in the slot
   clears its whole metered imbalance in the same pool (:mod:`market.pool_households`, ADR 0041),
   so the pool's prices see the whole community.

Every payment is a transfer between two accounts, so the money supply does not change.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from gridchain.market.accounts import Account
from gridchain.market.meters import meters_of, reading_at_or_before
from gridchain.market.orders import (
    Contract,
    payment_for,
)
from gridchain.market.pool import PoolClearing, PoolInputError, Position, clear_pool, pro_rata
from gridchain.market.state import StateReader
from gridchain.protocol.encoding import (
    I64,
    U8,
    U64,
    Bytes20,
    LabelledEnum,
    Record,
    decode,
    register,
)
from gridchain.protocol.meter import MeterType
from gridchain.protocol.tx import Device, Side

RECEIPT_PREFIX = b"stl:"
RECEIPT_PARTY_PREFIX = b"stlp:"
HOUR_MS = 3_600_000

#: The meters that measure a device, by side (see the module text).
DEVICE_METERS: dict[tuple[Side, Device], frozenset[MeterType]] = {
    (Side.SELL, Device.PV): frozenset({MeterType.PV, MeterType.EXTERNAL_GENERATOR}),
    (Side.SELL, Device.EV): frozenset({MeterType.EV}),
    (Side.SELL, Device.BATTERY): frozenset({MeterType.BATTERY}),
    (Side.BUY, Device.LOAD): frozenset({MeterType.LOADMETER}),
    (Side.BUY, Device.EV): frozenset({MeterType.EV}),
    (Side.BUY, Device.BATTERY): frozenset({MeterType.BATTERY}),
}


class Metering(LabelledEnum):
    """How a group's energy was measured."""

    #: Every meter of the group had a reading at or before the slot's start and one ending at
    #: its end.
    COMPLETE = 0
    #: Some meter lacked a reading at the start, or none ended inside the slot, or the last one
    #: ended before the slot did: the unmeasured part counted as zero.
    MISSING_READINGS = 1
    #: The participant has no meter for the device: zero.
    NO_METER = 2


class DeliveryStatus(LabelledEnum):
    DELIVERED = 1
    PARTIAL = 2
    NOT_DELIVERED = 3


@register(0x65)
@dataclass(frozen=True, slots=True)
class Receipt(Record):
    """What a settled contract's trade record shows (seed 000, figure 2.26), in integers.

    ``*_start_wh``/``*_end_wh`` are the summed registers the energy was read from (export for
    the seller, import for the buyer; import - export for net meters, so they may be negative).
    The pool fields are the party's whole position in the slot, shared by its contracts.
    """

    trade_id: U64
    market: U8
    slot: U64
    seller: Bytes20
    buyer: Bytes20
    seller_device: U8
    buyer_device: U8
    quantity_wh: U64
    price_mc_per_kwh: U64
    escrow_mc: U64
    delivered_wh: U64
    taken_wh: U64
    paid_mc: U64
    released_mc: U64
    shortfall_wh: U64
    fine_mc: U64
    fine_paid_mc: U64
    seller_start_wh: I64
    seller_end_wh: I64
    seller_metered_wh: U64
    seller_metering: U8
    buyer_start_wh: I64
    buyer_end_wh: I64
    buyer_metered_wh: U64
    buyer_metering: U8
    pool_p_sell_mc_per_kwh: U64
    pool_p_buy_mc_per_kwh: U64
    seller_pool_wh: I64
    seller_pool_mc: I64
    buyer_pool_wh: I64
    buyer_pool_mc: I64
    status: U8
    height: U64
    settled_ms: U64


@dataclass(frozen=True, slots=True)
class GroupMetering:
    """A (participant, side, device) group's registers and the energy counted from them."""

    start_wh: int = 0
    end_wh: int = 0
    metered_wh: int = 0
    metering: Metering = Metering.NO_METER


@dataclass(frozen=True, slots=True)
class SettleItem:
    """A contract to settle and the devices of its two orders."""

    contract: Contract
    seller_device: int
    buyer_device: int


GroupKey = tuple[bytes, int, int]  # (participant, side, device)


@dataclass(frozen=True, slots=True)
class SlotSettlement:
    receipts: tuple[Receipt, ...]
    #: Every account the settlement read, after it (the caller writes the changed ones).
    accounts: dict[bytes, Account]
    clearing: PoolClearing
    #: What each household outside the contracts paid (< 0) or was paid (> 0) by the pool.
    household_paid: dict[bytes, int]


def move_capped(accounts: dict[bytes, Account], payer: bytes, payee: bytes, amount: int) -> int:
    """Move up to ``amount`` of ``payer``'s spendable money to ``payee``; return what moved."""
    src = accounts[payer]
    moved = max(0, min(amount, src.balance_mc - src.locked_mc))
    if moved:
        accounts[payer] = replace(src, balance_mc=src.balance_mc - moved)
        dst = accounts[payee]
        accounts[payee] = replace(dst, balance_mc=dst.balance_mc + moved)
    return moved


def settle_slot(
    items: Sequence[SettleItem],
    metering: Mapping[GroupKey, GroupMetering],
    accounts: Mapping[bytes, Account],
    *,
    pool_account: bytes,
    r_buy: int,
    r_sell: int,
    penalty_mc_per_kwh: int,
    height: int,
    timestamp_ms: int,
    households: Mapping[bytes, int] | None = None,
) -> SlotSettlement:
    """Settle one slot's contracts and pool (pure; see the module text for every rule).

    ``items`` are in trade-id order; ``accounts`` must hold every party, every household and
    ``pool_account``.  ``households`` are the metered positions of participants with no contract
    in the slot (:mod:`market.pool_households`); they clear in the same pool, so its prices see
    the whole community's supply and demand.
    """
    books = dict(accounts)
    groups: dict[GroupKey, list[int]] = {}
    for i, item in enumerate(items):
        c = item.contract
        groups.setdefault((c.seller, int(Side.SELL), item.seller_device), []).append(i)
        groups.setdefault((c.buyer, int(Side.BUY), item.buyer_device), []).append(i)

    def measured(key: GroupKey) -> GroupMetering:
        return metering.get(key, GroupMetering())

    delivered = [0] * len(items)
    taken = [0] * len(items)
    positions: dict[bytes, int] = {}
    # Sellers first: what the buyers received depends on it.
    for key, members in groups.items():
        if key[1] != Side.SELL:
            continue
        quantities = [items[i].contract.quantity_wh for i in members]
        total = sum(quantities)
        metered = measured(key).metered_wh
        shares = quantities if metered >= total else pro_rata(metered, quantities)
        for i, amount in zip(members, shares, strict=True):
            delivered[i] = amount
        positions[key[0]] = positions.get(key[0], 0) + max(metered - total, 0)
    for key, members in groups.items():
        if key[1] != Side.BUY:
            continue
        quantities = [items[i].contract.quantity_wh for i in members]
        total = sum(quantities)
        metered = measured(key).metered_wh
        shares = quantities if metered >= total else pro_rata(metered, quantities)
        for i, amount in zip(members, shares, strict=True):
            taken[i] = amount
        received = sum(delivered[i] for i in members)
        positions[key[0]] = positions.get(key[0], 0) + received - metered

    paid = [0] * len(items)
    fines = [0] * len(items)
    fines_paid = [0] * len(items)
    for i, item in enumerate(items):
        c = item.contract
        paid[i] = payment_for(c.price_mc_per_kwh, delivered[i])
        buyer = books[c.buyer]
        # The escrow is part of the buyer's balance and locked; unlock it all, then pay.
        books[c.buyer] = replace(
            buyer,
            balance_mc=buyer.balance_mc - paid[i],
            locked_mc=buyer.locked_mc - c.amount_mc,
        )
        seller = books[c.seller]
        books[c.seller] = replace(seller, balance_mc=seller.balance_mc + paid[i])
    for i, item in enumerate(items):
        c = item.contract
        fines[i] = (c.quantity_wh - delivered[i]) * penalty_mc_per_kwh // 1000
        fines_paid[i] = move_capped(books, c.seller, c.buyer, fines[i])

    for party, net_wh in (households or {}).items():
        if party in positions:
            raise PoolInputError(f"household {party.hex()} is also a party of a contract")
        positions[party] = net_wh
    ordered = [Position(p, positions[p]) for p in sorted(positions)]
    clearing = clear_pool(ordered, r_buy, r_sell)
    pool_paid: dict[bytes, int] = {}
    for share in clearing.shares:
        if share.amount_mc < 0:
            pool_paid[share.participant] = -move_capped(
                books, share.participant, pool_account, -share.amount_mc
            )
    for share in clearing.shares:
        if share.amount_mc > 0:
            pool_paid[share.participant] = move_capped(
                books, pool_account, share.participant, share.amount_mc
            )

    receipts = []
    for i, item in enumerate(items):
        c = item.contract
        s = measured((c.seller, int(Side.SELL), item.seller_device))
        b = measured((c.buyer, int(Side.BUY), item.buyer_device))
        if delivered[i] == c.quantity_wh:
            status = DeliveryStatus.DELIVERED
        elif delivered[i]:
            status = DeliveryStatus.PARTIAL
        else:
            status = DeliveryStatus.NOT_DELIVERED
        receipts.append(
            Receipt(
                trade_id=c.trade_id,
                market=c.market,
                slot=c.slot,
                seller=c.seller,
                buyer=c.buyer,
                seller_device=item.seller_device,
                buyer_device=item.buyer_device,
                quantity_wh=c.quantity_wh,
                price_mc_per_kwh=c.price_mc_per_kwh,
                escrow_mc=c.amount_mc,
                delivered_wh=delivered[i],
                taken_wh=taken[i],
                paid_mc=paid[i],
                released_mc=c.amount_mc - paid[i],
                shortfall_wh=c.quantity_wh - delivered[i],
                fine_mc=fines[i],
                fine_paid_mc=fines_paid[i],
                seller_start_wh=s.start_wh,
                seller_end_wh=s.end_wh,
                seller_metered_wh=s.metered_wh,
                seller_metering=int(s.metering),
                buyer_start_wh=b.start_wh,
                buyer_end_wh=b.end_wh,
                buyer_metered_wh=b.metered_wh,
                buyer_metering=int(b.metering),
                pool_p_sell_mc_per_kwh=clearing.prices.p_sell_mc_per_kwh,
                pool_p_buy_mc_per_kwh=clearing.prices.p_buy_mc_per_kwh,
                seller_pool_wh=positions.get(c.seller, 0),
                seller_pool_mc=pool_paid.get(c.seller, 0),
                buyer_pool_wh=positions.get(c.buyer, 0),
                buyer_pool_mc=pool_paid.get(c.buyer, 0),
                status=int(status),
                height=height,
                settled_ms=timestamp_ms,
            )
        )
    household_paid = {p: pool_paid.get(p, 0) for p in households or {}}
    return SlotSettlement(tuple(receipts), books, clearing, household_paid)


# --- the state side --------------------------------------------------------------------------


def _u64(value: int) -> bytes:
    return value.to_bytes(8, "big")


def receipt_key(slot: int, trade_id: int) -> bytes:
    return RECEIPT_PREFIX + _u64(slot) + _u64(trade_id)


def receipt_party_key(party: bytes, slot: int, trade_id: int) -> bytes:
    return RECEIPT_PARTY_PREFIX + party + _u64(slot) + _u64(trade_id)


def receipts(
    state: StateReader, *, party: bytes | None = None, slot: int | None = None
) -> list[Receipt]:
    """Receipts by slot and trade id, optionally of one party (as buyer or seller)."""
    tail = b"" if slot is None else _u64(slot)
    if party is None:
        return [decode(raw, Receipt) for _, raw in state.scan(RECEIPT_PREFIX + tail)]
    keys = [key for key, _ in state.scan(RECEIPT_PARTY_PREFIX + party + tail)]
    out = []
    for key in keys:
        raw = state.get(RECEIPT_PREFIX + key[len(RECEIPT_PARTY_PREFIX) + len(party) :])
        if raw is not None:
            out.append(decode(raw, Receipt))
    return out


def group_metering(
    state: StateReader, party: bytes, side: int, device: int, *, start_ms: int, end_ms: int
) -> GroupMetering:
    """Measure one (participant, side, device) group over [start_ms, end_ms] (module text)."""
    owned = meters_of(state, party)
    wanted = DEVICE_METERS.get((Side(side), Device(device)), frozenset())
    dedicated = [m for m in owned if m.meter_type in wanted]
    net = not dedicated
    chosen = dedicated or [m for m in owned if m.meter_type == MeterType.NETMETER]
    if not chosen:
        return GroupMetering()
    return meters_metering(
        state, [m.meter_id for m in chosen], side, net=net, start_ms=start_ms, end_ms=end_ms
    )


def meters_metering(
    state: StateReader,
    meter_ids: Sequence[str],
    side: int,
    *,
    net: bool,
    start_ms: int,
    end_ms: int,
) -> GroupMetering:
    """Measure these meters over [start_ms, end_ms]: the export register for the sell side,
    the import register for the buy side, import - export for net meters (module text)."""
    start_sum = end_sum = delta = 0
    metering = Metering.COMPLETE
    for meter_id in meter_ids:
        first = reading_at_or_before(state, meter_id, start_ms)
        last = reading_at_or_before(state, meter_id, end_ms)
        if (
            first is None
            or last is None
            or last.record.sequence == first.record.sequence
            or last.record.interval_end_ms < end_ms
        ):
            # No reading at the start, none ending in the slot, or the slot's last part
            # unread: whatever was not measured counts as nothing.
            metering = Metering.MISSING_READINGS
        values: list[int | None] = []
        for found in (first, last):
            if found is None:
                values.append(None)
            elif net:
                values.append(found.record.import_wh - found.record.export_wh)
            elif side == Side.SELL:
                values.append(found.record.export_wh)
            else:
                values.append(found.record.import_wh)
        start_v, end_v = values
        start_sum += start_v if start_v is not None else (end_v or 0)
        end_sum += end_v if end_v is not None else (start_v or 0)
        if start_v is not None and end_v is not None:
            delta += end_v - start_v
    metered = delta
    if net:
        metered = max(-delta, 0) if side == Side.SELL else max(delta, 0)
    return GroupMetering(start_sum, end_sum, metered, metering)
