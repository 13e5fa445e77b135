"""Ledger objects as the API's models (gridchain.api.models): hex for bytes, gc1 text for
addresses, names for enumerations.  The models are the contract; these functions only fill
them from the records the query reads."""

from __future__ import annotations

import dataclasses

from gridchain.api import models as m
from gridchain.market.cd_requests import CDRecord, CDStatus, IntervalClock
from gridchain.market.cd_schedule import Decision
from gridchain.market.cd_settlement import CDReceipt
from gridchain.market.device_links import DeviceLink
from gridchain.market.governance import ProposalRecord, ProposalStatus
from gridchain.market.meters import METER_TYPE_LABELS, MeterRecord, StoredReading
from gridchain.market.orders import (
    Contract,
    ContractStatus,
    MarketEvent,
    OrderRecord,
    OrderStatus,
    TradeEvent,
    lock_for,
)
from gridchain.market.settlement import DeliveryStatus, Metering, Receipt
from gridchain.market.slot_settlement import PoolReceipt, PoolSlot
from gridchain.protocol.address import address_of, format_address
from gridchain.protocol.block import Block, Certificate, CommittedBlock
from gridchain.protocol.encoding import to_jsonable
from gridchain.protocol.governance import decode_proposed
from gridchain.protocol.meter import MeterType, ReadingStatus
from gridchain.protocol.tx import CDKind, Device, Market, Side, Transaction


def proposal_view(record: ProposalRecord, threshold: int) -> m.Proposal:
    inner = decode_proposed(record.record)
    return m.Proposal(
        id=record.proposal_id.hex(),
        kind=type(inner).__name__,
        record=to_jsonable(inner, format_address),
        record_hex=record.record.hex(),
        proposer=record.proposer.hex(),
        approvals=[k.hex() for k in record.approvals],
        threshold=threshold,
        expires_at_height=record.expires_at_height,
        proposed_height=record.proposed_height,
        status=ProposalStatus(record.status).label,
        closed_height=record.closed_height,
        error=record.error,
    )


def tx_view(tx: Transaction) -> m.TxView:
    body = to_jsonable(tx.body, format_address)
    return m.TxView.model_validate(
        {
            "hash": tx.hash().hex(),
            "kind": tx.kind,
            "sender": tx.sender.hex(),
            "sender_address": format_address(address_of(tx.sender)),
            "nonce": tx.nonce,
            "body": body,
            "signature": tx.signature.hex(),
        }
    )


def certificate_view(cert: Certificate) -> m.CertificateView:
    return m.CertificateView.model_validate(to_jsonable(cert))


def block_view(block: Block, certificate: Certificate | None) -> m.BlockView:
    return m.BlockView.model_validate(
        {
            "height": block.height,
            "hash": block.hash().hex(),
            "header": to_jsonable(block.header),
            "txs": [tx_view(tx) for tx in block.txs],
            "schedule": to_jsonable(block.schedule),
            "certificate": None if certificate is None else certificate_view(certificate),
        }
    )


def committed_view(committed: CommittedBlock) -> m.BlockView:
    return block_view(committed.block, committed.certificate)


def order_view(order: OrderRecord) -> m.Order:
    """An order with names for its enumerations and the escrow its open part holds.

    The view shows the iceberg's hidden quantity: the chain is transparent to anyone who can
    read it (the PlaceOrder transaction carries the total); only the book hides it.
    """
    return m.Order.model_validate(
        {
            "id": order.order_id.hex(),
            "owner": format_address(order.owner),
            "market": Market(order.market).label,
            "slot": order.slot,
            "side": Side(order.side).label,
            "device": Device(order.device).label,
            "price_mc_per_kwh": order.price_mc_per_kwh,
            "quantity_wh": order.quantity_wh,
            "iceberg": order.peak_wh > 0,
            "peak_wh": order.peak_wh,
            "open_wh": order.open_wh,
            "display_wh": order.display_wh,
            "hidden_wh": order.open_wh - order.display_wh,
            "filled_wh": order.filled_wh,
            "cancelled_wh": order.cancelled_wh,
            "locked_mc": lock_for(order.price_mc_per_kwh, order.open_wh)
            if order.side == Side.BUY
            else 0,
            "status": OrderStatus(order.status).label,
            "seq": order.seq,
            "placed_height": order.placed_height,
            "placed_ms": order.placed_ms,
            "expires_ms": order.expires_ms,
        }
    )


def contract_view(contract: Contract) -> m.Trade:
    """A trade: the contract it created, awaiting settlement against the meters."""
    return m.Trade.model_validate(
        {
            "trade_id": contract.trade_id,
            "market": Market(contract.market).label,
            "slot": contract.slot,
            "seller": format_address(contract.seller),
            "buyer": format_address(contract.buyer),
            "sell_order": contract.sell_order.hex(),
            "buy_order": contract.buy_order.hex(),
            "quantity_wh": contract.quantity_wh,
            "price_mc_per_kwh": contract.price_mc_per_kwh,
            "amount_mc": contract.amount_mc,
            "aggressor": Side(contract.taker_side).label,
            "height": contract.height,
            "timestamp_ms": contract.timestamp_ms,
            "status": ContractStatus(contract.status).label,
        }
    )


def market_event_view(event: MarketEvent, height: int) -> m.TradeEvent | m.OrderEvent:
    """One websocket message for a trade or an order change."""
    if isinstance(event, TradeEvent):
        trade = contract_view(event.contract).model_dump()
        return m.TradeEvent.model_validate({"type": "trade", **trade, "height": height})
    return m.OrderEvent(
        type="order", event=event.kind, height=height, order=order_view(event.order)
    )


def meter_view(meter: MeterRecord, link: DeviceLink | None = None) -> m.Meter:
    """A meter and the head of its reading chain: where its bridge resumes after a restart.

    ``last_sequence``, ``last_hash`` and ``last_interval_end_ms`` are null until the first
    reading is accepted; the bridge's next record then carries ``last_sequence + 1`` (0 at
    first) and ``prev_hash = last_hash`` (32 zero bytes at first).
    """
    has_readings = meter.next_sequence > 0
    return m.Meter.model_validate(
        {
            "meter_id": meter.meter_id,
            "owner": format_address(meter.owner),
            "meter_type": METER_TYPE_LABELS[MeterType(meter.meter_type)],
            "bridge_key": meter.bridge_key.hex(),
            "profile": meter.profile,
            "registered_height": meter.registered_height,
            "last_sequence": meter.next_sequence - 1 if has_readings else None,
            "last_hash": meter.last_hash.hex() if has_readings else None,
            "last_interval_end_ms": meter.last_interval_end_ms if has_readings else None,
            "last_import_wh": meter.last_import_wh if has_readings else None,
            "last_export_wh": meter.last_export_wh if has_readings else None,
            "device_id": None if link is None else link.device_id,
            "device_linked_height": None if link is None else link.linked_height,
        }
    )


def device_link_view(link: DeviceLink, meter: MeterRecord) -> m.DeviceLink:
    return m.DeviceLink(
        device_id=link.device_id,
        meter_id=link.meter_id,
        meter_type=METER_TYPE_LABELS[MeterType(meter.meter_type)],
        owner=format_address(meter.owner),
        linked_height=link.linked_height,
    )


def reading_view(stored: StoredReading) -> m.Reading:
    r = stored.record
    status = {s.value: s.name.lower() for s in ReadingStatus}.get(r.status, str(r.status))
    return m.Reading.model_validate(
        {
            "sequence": r.sequence,
            "interval_start_ms": r.interval_start_ms,
            "interval_end_ms": r.interval_end_ms,
            "import_wh": r.import_wh,
            "export_wh": r.export_wh,
            "power_w": r.power_w,
            "voltage_dv": r.voltage_dv,
            "status": status,
            "prev_hash": r.prev_hash.hex(),
            "hash": stored.record_hash.hex(),
            "height": stored.height,
        }
    )


def pool_slot_view(pool: PoolSlot) -> m.PoolSlot:
    """A settled slot's pool; every field is the record's own, by name."""
    return m.PoolSlot.model_validate(dataclasses.asdict(pool))


def pool_receipt_view(receipt: PoolReceipt) -> m.PoolReceipt:
    """A household's pool receipt: the record with its address and metering spelled out."""
    fields = dataclasses.asdict(receipt)
    fields["participant"] = format_address(receipt.participant)
    fields["metering"] = Metering(receipt.metering).label
    return m.PoolReceipt.model_validate(fields)


def receipt_view(receipt: Receipt) -> m.Receipt:
    """A settled trade as the source's trade record shows it (seed 000, figure 2.26)."""
    return m.Receipt.model_validate(
        {
            "trade_id": receipt.trade_id,
            "market": Market(receipt.market).label,
            "slot": receipt.slot,
            "seller": format_address(receipt.seller),
            "buyer": format_address(receipt.buyer),
            "seller_device": Device(receipt.seller_device).label,
            "buyer_device": Device(receipt.buyer_device).label,
            "seller_reading": {
                "start_wh": receipt.seller_start_wh,
                "end_wh": receipt.seller_end_wh,
                "metered_wh": receipt.seller_metered_wh,
                "metering": Metering(receipt.seller_metering).label,
            },
            "buyer_reading": {
                "start_wh": receipt.buyer_start_wh,
                "end_wh": receipt.buyer_end_wh,
                "metered_wh": receipt.buyer_metered_wh,
                "metering": Metering(receipt.buyer_metering).label,
            },
            "quantity_wh": receipt.quantity_wh,
            "delivered_wh": receipt.delivered_wh,
            "taken_wh": receipt.taken_wh,
            "shortfall_wh": receipt.shortfall_wh,
            "price_mc_per_kwh": receipt.price_mc_per_kwh,
            "escrow_mc": receipt.escrow_mc,
            "paid_mc": receipt.paid_mc,
            "released_mc": receipt.released_mc,
            "fine_mc": receipt.fine_mc,
            "fine_paid_mc": receipt.fine_paid_mc,
            "pool": {
                "p_sell_mc_per_kwh": receipt.pool_p_sell_mc_per_kwh,
                "p_buy_mc_per_kwh": receipt.pool_p_buy_mc_per_kwh,
                "seller_wh": receipt.seller_pool_wh,
                "seller_mc": receipt.seller_pool_mc,
                "buyer_wh": receipt.buyer_pool_wh,
                "buyer_mc": receipt.buyer_pool_mc,
            },
            "status": DeliveryStatus(receipt.status).label,
            "shortfall_reason": shortfall_reason(receipt),
            "height": receipt.height,
            "settled_ms": receipt.settled_ms,
        }
    )


# --- C&D requests and the schedule (market/cd_requests.py, market/cd_schedule.py) -----------


def shortfall_reason(receipt: Receipt) -> str | None:
    """Why a contract's delivery fell short, from what settlement recorded of the seller's
    metering (market.settlement.Metering): no meter for the device, readings that did not
    cover the slot (the unmeasured part counted as zero), or a meter that measured less than
    was sold.  None when the whole quantity was delivered."""
    if receipt.delivered_wh >= receipt.quantity_wh:
        return None
    metering = Metering(receipt.seller_metering)
    if metering is Metering.NO_METER:
        return "no_meter"
    if metering is Metering.MISSING_READINGS:
        return "missing_readings"
    return "under_delivered"


def cd_energy_wh(record: CDRecord, minutes: int) -> tuple[int, int]:
    """Delivered and remaining energy (Wh) of a request, from its W-intervals.

    One W-interval is ``minutes / 60`` Wh.  Delivered energy is rounded down; what remains is
    rounded up for a charge request (what it still needs) and down for a discharge request
    (what it may still give); both are bounded by the requested energy.
    """
    delivered = min(record.energy_wh, record.delivered_units * minutes // 60)
    residual = record.residual_units * minutes
    remaining = -(-residual // 60) if record.is_charge else residual // 60
    return delivered, min(record.energy_wh, remaining)


def cd_view(request_id: bytes, record: CDRecord, clock: IntervalClock) -> m.CDRequest:
    """A C&D request with names for its enumerations, its window in intervals and in block
    time, and its progress in W-intervals and in Wh."""
    delivered_wh, remaining_wh = cd_energy_wh(record, clock.interval_minutes)
    return m.CDRequest.model_validate(
        {
            "id": request_id.hex(),
            "owner": format_address(record.owner),
            "kind": CDKind(record.kind).label,
            "device": Device(record.device).label,
            "arrival_ms": record.arrival_ms,
            "departure_ms": record.departure_ms,
            "energy_wh": record.energy_wh,
            "max_rate_w": record.max_rate_w,
            "limit_price_mc_per_kwh": record.limit_price_mc_per_kwh,
            "meter_id": record.meter_id,
            "first_interval": record.first_interval,
            "end_interval": record.end_interval,
            "window_start_ms": clock.start_ms(record.first_interval),
            "window_end_ms": clock.start_ms(record.end_interval),
            "cap_units": record.cap_units,
            "delivered_units": record.delivered_units,
            "remaining_units": record.residual_units,
            "delivered_wh": delivered_wh,
            "remaining_wh": remaining_wh,
            "submitted_height": record.submitted_height,
            "status": CDStatus(record.status).label,
        }
    )


def cd_receipt_view(receipt: CDReceipt) -> m.CDReceipt:
    """A C&D receipt with names for its enumerations."""
    return m.CDReceipt.model_validate(
        {
            **{f: getattr(receipt, f) for f in CD_RECEIPT_NUMBERS},
            "request_id": receipt.request_id.hex(),
            "owner": format_address(receipt.owner),
            "meter_id": receipt.meter_id,
            "kind": CDKind(receipt.kind).label,
            "device": Device(receipt.device).label,
            "metering": Metering(receipt.metering).label,
        }
    )


#: The receipt's integer fields, shown as they are.
CD_RECEIPT_NUMBERS = (
    "interval",
    "start_ms",
    "end_ms",
    "setpoint_w",
    "scheduled_wh",
    "start_wh",
    "end_wh",
    "metered_wh",
    "deviation_wh",
    "tolerance_wh",
    "price_mc_per_kwh",
    "amount_mc",
    "paid_mc",
    "penalty_mc",
    "penalty_paid_mc",
    "height",
    "settled_ms",
)


def schedule_entry_view(request_id: bytes, rate_w: int, record: CDRecord | None) -> m.ScheduleEntry:
    """One setpoint of a decision; owner, kind and device come from the request's record."""
    return m.ScheduleEntry.model_validate(
        {
            "request_id": request_id.hex(),
            "owner": None if record is None else format_address(record.owner),
            "kind": None if record is None else CDKind(record.kind).label,
            "device": None if record is None else Device(record.device).label,
            "rate_w": rate_w,
            "meter_id": None if record is None else record.meter_id,
        }
    )


def decision_view(
    decision: Decision, clock: IntervalClock, records: dict[bytes, CDRecord]
) -> m.Decision:
    """The setpoints the chain decided for one interval (``benefit`` is a string: it may
    exceed 2^53, beyond what a JSON number keeps exactly in most clients)."""
    start = clock.start_ms(decision.interval)
    return m.Decision.model_validate(
        {
            "interval": decision.interval,
            "start_ms": start,
            "end_ms": start + clock.interval_ms,
            "height": decision.height,
            "base_load_w": decision.base_load_w,
            "load_w": decision.load_w,
            "benefit": str(decision.benefit),
            "capacity_w": decision.capacity_w or None,
            "over_capacity": bool(decision.over_capacity),
            "entries": [
                schedule_entry_view(e.request_id, e.rate_w, records.get(e.request_id))
                for e in decision.entries
            ],
        }
    )
