"""Settling delivery slots in the state: every slot, once, contracts and pool together.

The rules are :func:`market.settlement.settle_slot` (contracts, fines, the pool) and
:mod:`market.pool_households` (the position of a household with no contract in the slot).  This
module is where they meet the state, in :meth:`market.app.Application.begin_block`:

* **Every slot is settled**, not only those with contracts (ADR 0041): since every metered
  household clears its imbalance in the pool, a slot without a single trade still has a pool.
  A cursor (``meta:settle``, the first slot not yet settled) starts at the genesis slot and
  walks forward one slot at a time once ``slot end + settlement_grace_ms <= block time``.  At
  most ``MAX_SLOTS_PER_BLOCK`` slots settle in one block, so a block after a long silence costs
  a bounded amount; the rest follow in the next blocks, in order, and pruning never passes the
  cursor.
* **Records.**  A contract's receipt as before (``stl:``); per household outside the contracts a
  :class:`PoolReceipt` (``plr:`` slot + address, and ``plrp:`` address + slot for "mine"); per slot
  with any position a :class:`PoolSlot` with the SDR prices and totals (``pls:`` slot), which is
  what a page or a wallet shows as the recent pool prices.  All three leave the live state with
  the slot's other records (market/pruning.py) and stay readable from the archive.

Deterministic: a function of the state and the block's height and time.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from gridchain.genesis.schema import Genesis
from gridchain.market.accounts import get_account, put_account
from gridchain.market.chain_params import params_at
from gridchain.market.orders import ContractStatus, contract_key, contracts, get_order
from gridchain.market.pool_households import HouseholdPosition, household_positions
from gridchain.market.settlement import (
    HOUR_MS,
    GroupKey,
    GroupMetering,
    Receipt,
    SettleItem,
    SlotSettlement,
    group_metering,
    receipt_key,
    receipt_party_key,
    settle_slot,
)
from gridchain.market.state import Overlay, StateReader
from gridchain.protocol.address import address_of
from gridchain.protocol.encoding import I64, U8, U32, U64, Bytes20, Record, decode, register
from gridchain.protocol.tx import Side

#: The first slot not settled yet (absent: the genesis slot).
CURSOR_KEY = b"meta:settle"
POOL_RECEIPT_PREFIX = b"plr:"
POOL_RECEIPT_PARTY_PREFIX = b"plrp:"
POOL_SLOT_PREFIX = b"pls:"
#: A block settles at most this many slots, a day of 15-minute slots (module text).
MAX_SLOTS_PER_BLOCK = 96


@register(0x66)
@dataclass(frozen=True, slots=True)
class PoolReceipt(Record):
    """What the pool did with a household that had no contract in the slot (integers).

    ``net_wh`` > 0 was supplied to the pool, < 0 drawn from it; ``start_wh``/``end_wh`` are the
    summed import - export registers it was read from, and ``cd_wh`` the C&D energy (import -
    export) left to C&D settlement.  ``amount_mc`` is what the pool assessed (> 0 paid to the
    household, < 0 owed by it) and ``paid_mc`` what moved (capped by what the payer could spend).
    """

    slot: U64
    participant: Bytes20
    net_wh: I64
    internal_wh: U64
    grid_wh: U64
    start_wh: I64
    end_wh: I64
    cd_wh: I64
    metering: U8
    p_sell_mc_per_kwh: U64
    p_buy_mc_per_kwh: U64
    amount_mc: I64
    paid_mc: I64
    height: U64
    settled_ms: U64


@register(0x67)
@dataclass(frozen=True, slots=True)
class PoolSlot(Record):
    """A slot's pool: the SDR prices, totals and how many positions cleared."""

    slot: U64
    tsp_wh: U64
    tbp_wh: U64
    r_buy_mc_per_kwh: U64
    r_sell_mc_per_kwh: U64
    p_sell_mc_per_kwh: U64
    p_buy_mc_per_kwh: U64
    grid_import_wh: U64
    grid_export_wh: U64
    residual_mc: I64
    contracts: U32
    households: U32
    height: U64
    settled_ms: U64


def _u64(value: int) -> bytes:
    return value.to_bytes(8, "big")


def pool_receipt_key(slot: int, participant: bytes) -> bytes:
    return POOL_RECEIPT_PREFIX + _u64(slot) + participant


def pool_receipt_party_key(participant: bytes, slot: int) -> bytes:
    return POOL_RECEIPT_PARTY_PREFIX + participant + _u64(slot)


def pool_slot_key(slot: int) -> bytes:
    return POOL_SLOT_PREFIX + _u64(slot)


def pool_receipts(
    state: StateReader, *, party: bytes | None = None, slot: int | None = None
) -> list[PoolReceipt]:
    """Households' pool receipts by slot, optionally of one participant."""
    tail = b"" if slot is None else _u64(slot)
    if party is None:
        return [decode(raw, PoolReceipt) for _, raw in state.scan(POOL_RECEIPT_PREFIX + tail)]
    out = []
    for key, _ in state.scan(POOL_RECEIPT_PARTY_PREFIX + party + tail):
        found = int.from_bytes(key[-8:], "big")
        raw = state.get(pool_receipt_key(found, party))
        if raw is not None:
            out.append(decode(raw, PoolReceipt))
    return out


def get_pool_slot(state: StateReader, slot: int) -> PoolSlot | None:
    """A settled slot's pool (None: not settled yet, or nobody had a position)."""
    raw = state.get(pool_slot_key(slot))
    return None if raw is None else decode(raw, PoolSlot)


def pool_slots(state: StateReader, *, from_slot: int = 0) -> list[PoolSlot]:
    """Settled slots' pools from ``from_slot`` on, oldest first."""
    return [
        decode(raw, PoolSlot)
        for _, raw in state.scan_from(POOL_SLOT_PREFIX, pool_slot_key(from_slot), inclusive=True)
    ]


def settled_before(genesis: Genesis, state: StateReader) -> int:
    """The first slot not settled yet (the genesis slot until a block moves the cursor)."""
    raw = state.get(CURSOR_KEY)
    if raw is None:
        return genesis.genesis_time_ms // genesis.params.slot_length_ms
    return int.from_bytes(raw, "big")


def settle_due(genesis: Genesis, view: Overlay, height: int, timestamp_ms: int) -> list[Receipt]:
    """Settle the slots whose end + grace is at or before the block time (module text); return
    the contracts' receipts."""
    params = genesis.params
    length = params.slot_length_ms
    cursor = settled_before(genesis, view)
    out: list[Receipt] = []
    for _ in range(MAX_SLOTS_PER_BLOCK):
        if (cursor + 1) * length + params.settlement_grace_ms > timestamp_ms:
            break
        out.extend(_settle_slot(genesis, view, cursor, height, timestamp_ms))
        cursor += 1
        view.put(CURSOR_KEY, _u64(cursor))
    return out


def _settle_slot(
    genesis: Genesis, view: Overlay, slot: int, height: int, timestamp_ms: int
) -> list[Receipt]:
    params = genesis.params
    start = slot * params.slot_length_ms
    end = start + params.slot_length_ms
    pending = [
        c for c in contracts(view, slot=slot) if c.status == ContractStatus.AWAITING_SETTLEMENT
    ]
    items = []
    for c in pending:
        sell, buy = get_order(view, c.sell_order), get_order(view, c.buy_order)
        # A slot's orders stay live until it is settled and pruned (market/pruning.py), so a
        # contract being settled always names two stored orders.
        assert sell is not None
        assert buy is not None
        items.append(SettleItem(c, sell.device, buy.device))
    metering: dict[GroupKey, GroupMetering] = {}
    for item in items:
        for key in (
            (item.contract.seller, int(Side.SELL), item.seller_device),
            (item.contract.buyer, int(Side.BUY), item.buyer_device),
        ):
            if key not in metering:
                metering[key] = group_metering(
                    view, key[0], key[1], key[2], start_ms=start, end_ms=end
                )
    pool_account = address_of(bytes.fromhex(genesis.governance_public_key))
    parties = {pool_account}
    for c in pending:
        parties.update((c.seller, c.buyer))
    households = household_positions(genesis, view, start, end, exclude=parties)
    if not items and not any(h.net_wh for h in households.values()):
        return []
    accounts = {p: get_account(view, p) for p in sorted(parties | households.keys())}
    in_force = params_at(view, genesis, height)
    tariff = in_force.tariff_at_hour(start // HOUR_MS % 24)
    result = settle_slot(
        items,
        metering,
        accounts,
        pool_account=pool_account,
        r_buy=tariff.retail_mc_per_kwh,
        r_sell=tariff.feed_in_mc_per_kwh,
        penalty_mc_per_kwh=in_force.penalty_mc_per_kwh,
        height=height,
        timestamp_ms=timestamp_ms,
        households={p: h.net_wh for p, h in households.items()},
    )
    for address in sorted(result.accounts):
        if result.accounts[address] != accounts[address]:
            put_account(view, address, result.accounts[address])
    for c, receipt in zip(pending, result.receipts, strict=True):
        view.put(
            contract_key(c.slot, c.trade_id),
            replace(c, status=int(ContractStatus.SETTLED)).encode(),
        )
        view.put(receipt_key(c.slot, c.trade_id), receipt.encode())
        view.put(receipt_party_key(c.seller, c.slot, c.trade_id), b"s")
        view.put(receipt_party_key(c.buyer, c.slot, c.trade_id), b"b")
    _record_pool(
        view,
        slot,
        households=households,
        result=result,
        height=height,
        timestamp_ms=timestamp_ms,
        contract_count=len(pending),
    )
    return list(result.receipts)


def _record_pool(
    view: Overlay,
    slot: int,
    *,
    households: dict[bytes, HouseholdPosition],
    result: SlotSettlement,
    height: int,
    timestamp_ms: int,
    contract_count: int,
) -> None:
    prices = result.clearing.prices
    shares = {s.participant: s for s in result.clearing.shares}
    for participant, position in households.items():
        if position.net_wh == 0:
            continue  # nothing crossed its connection (or nothing was read): nothing to show
        share = shares[participant]
        receipt = PoolReceipt(
            slot=slot,
            participant=participant,
            net_wh=position.net_wh,
            internal_wh=share.internal_wh,
            grid_wh=share.grid_wh,
            start_wh=position.start_wh,
            end_wh=position.end_wh,
            cd_wh=position.cd_wh,
            metering=int(position.metering),
            p_sell_mc_per_kwh=prices.p_sell_mc_per_kwh,
            p_buy_mc_per_kwh=prices.p_buy_mc_per_kwh,
            amount_mc=share.amount_mc,
            paid_mc=result.household_paid[participant],
            height=height,
            settled_ms=timestamp_ms,
        )
        view.put(pool_receipt_key(slot, participant), receipt.encode())
        view.put(pool_receipt_party_key(participant, slot), b"")
    view.put(
        pool_slot_key(slot),
        PoolSlot(
            slot=slot,
            tsp_wh=prices.tsp_wh,
            tbp_wh=prices.tbp_wh,
            r_buy_mc_per_kwh=prices.r_buy_mc_per_kwh,
            r_sell_mc_per_kwh=prices.r_sell_mc_per_kwh,
            p_sell_mc_per_kwh=prices.p_sell_mc_per_kwh,
            p_buy_mc_per_kwh=prices.p_buy_mc_per_kwh,
            grid_import_wh=result.clearing.grid_import_wh,
            grid_export_wh=result.clearing.grid_export_wh,
            residual_mc=result.clearing.residual_mc,
            contracts=contract_count,
            households=len(households),
            height=height,
            settled_ms=timestamp_ms,
        ).encode(),
    )
