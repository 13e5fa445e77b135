"""JSON views of ledger objects for the HTTP API: hex for bytes, gc1 text for addresses."""

from __future__ import annotations

from typing import Any

from market.orders import (
    Contract,
    ContractStatus,
    MarketEvent,
    OrderRecord,
    OrderStatus,
    TradeEvent,
    lock_for,
)
from protocol.address import address_of, format_address
from protocol.block import Block, Certificate, CommittedBlock
from protocol.encoding import to_jsonable
from protocol.tx import Device, Market, Side, Transaction


def tx_view(tx: Transaction) -> dict[str, Any]:
    body = to_jsonable(tx.body, format_address)
    return {
        "hash": tx.hash().hex(),
        "kind": tx.kind,
        "sender": tx.sender.hex(),
        "sender_address": format_address(address_of(tx.sender)),
        "nonce": tx.nonce,
        "body": body,
        "signature": tx.signature.hex(),
    }


def certificate_view(cert: Certificate) -> dict[str, Any]:
    view: dict[str, Any] = to_jsonable(cert)
    return view


def block_view(block: Block, certificate: Certificate | None) -> dict[str, Any]:
    header: dict[str, Any] = to_jsonable(block.header)
    return {
        "height": block.height,
        "hash": block.hash().hex(),
        "header": header,
        "txs": [tx_view(tx) for tx in block.txs],
        "schedule": to_jsonable(block.schedule),
        "certificate": None if certificate is None else certificate_view(certificate),
    }


def committed_view(committed: CommittedBlock) -> dict[str, Any]:
    return block_view(committed.block, committed.certificate)


def order_view(order: OrderRecord) -> dict[str, Any]:
    """An order with names for its enumerations and the escrow its open part holds.

    The view shows the iceberg's hidden quantity: the chain is transparent to anyone who can
    read it (the PlaceOrder transaction carries the total); only the book hides it.
    """
    return {
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


def contract_view(contract: Contract) -> dict[str, Any]:
    """A trade: the contract it created, awaiting settlement against the meters."""
    return {
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


def market_event_view(event: MarketEvent, height: int) -> dict[str, Any]:
    """One websocket message for a trade or an order change."""
    if isinstance(event, TradeEvent):
        return {"type": "trade", "height": height, **contract_view(event.contract)}
    return {
        "type": "order",
        "event": event.kind,
        "height": height,
        "order": order_view(event.order),
    }
