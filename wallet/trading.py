"""``gridchain wallet order buy|sell|cancel|amend``, ``orders``, ``book``, ``trades``, ``receipts``.

Units a person types (docs/wallet.md): prices in credits per kWh (``120.5``) or the chain's
mc per kWh (``120500mc``); energy in kWh (``1.5``) or Wh (``1500Wh``); the delivery slot by its
index (``--slot``) or by any time inside it (``--delivery 2024-05-01T18:30Z``).  The wallet
converts exactly or refuses (wallet.units), and checks what it can before asking for a
password or a signature: the gate closure from ``GET /v1/markets`` and, for a buy, that the
escrow fits the spendable balance.  The node stays the authority; its refusals are passed
through with its own code.
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime
from typing import Any

from gridchain.api.client import NodeClient, resolve_node_url
from gridchain.api.models import (
    Book,
    Markets,
    Order,
    OrderList,
    Receipt,
    ReceiptList,
    SealedOutcomeList,
    Trade,
    TradeList,
)
from gridchain.protocol.crypto import SigningKey
from gridchain.protocol.errors import GridchainError
from gridchain.protocol.sealed_read import ReadKind
from gridchain.protocol.tx import (
    DEVICE_BY_LABEL,
    MARKET_BY_LABEL,
    SIDE_BY_LABEL,
    AmendOrder,
    CancelOrder,
    PlaceOrder,
    TxBody,
)
from gridchain.wallet.commands import (
    DEFAULT_COMMIT_TIMEOUT_S,
    WalletArgumentError,
    connect,
    emit,
    format_table,
    json_errors,
    open_key,
    parse_address_arg,
    positive_seconds,
    sign_and_submit,
    tx_rows,
    wallet_path,
)
from gridchain.wallet.ids import id_text, is_full, resolve
from gridchain.wallet.keystore_file import keystore_address, read_keystore
from gridchain.wallet.sealing import (
    SealedTxRefusedError,
    add_sealed_flag,
    outcome_of,
    read_own,
)
from gridchain.wallet.units import (
    format_credits,
    format_energy,
    format_price,
    parse_energy,
    parse_price,
)

#: The device an order is for when --device is not given.
DEFAULT_DEVICE = {"buy": "Load", "sell": "PV"}


class GateClosedError(GridchainError):
    """The slot's book has passed its gate closure (checked before signing)."""

    code = "gate_closed"


async def _resolve_order(
    args: argparse.Namespace, node: NodeClient, own: str, key: SigningKey, typed: str
) -> str:
    """The full id of one of the wallet's own orders from its id or a unique prefix of it
    (the lists show 16 digits); read sealed with ``--sealed``."""
    if is_full(typed):
        return typed
    if getattr(args, "sealed", False):
        mine = await read_own(node, key, ReadKind.ORDERS)
        if not isinstance(mine, OrderList):
            raise TypeError(type(mine).__name__)
        ids = [o.id for o in mine.orders]
    else:
        ids = [o.id for o in await node.orders(own)]
    return resolve(typed, ids, "order id", f"the orders of {own}")


def parse_time_ms(text: str, what: str) -> int:
    """ISO 8601 with ``Z`` or an offset (``2024-05-01T18:30Z``), or milliseconds since the epoch.

    A time without a zone is refused: 18:30 means different instants on different devices.
    """
    stripped = text.strip()
    if stripped.isascii() and stripped.isdigit() and len(stripped) <= 19:
        return int(stripped)
    try:
        when = datetime.fromisoformat(stripped)
    except ValueError:
        raise WalletArgumentError(
            f"{what} is an ISO 8601 time like 2024-05-01T18:30Z, or ms since the epoch: {text!r}"
        ) from None
    if when.tzinfo is None:
        raise WalletArgumentError(
            f"{what} needs a zone: add Z (UTC) or an offset like +05:30: {text!r}"
        )
    return int(when.timestamp() * 1000)


def iso_ms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- parser ------------------------------------------------------------------------------


def book_arguments() -> argparse.ArgumentParser:
    """``--market`` and ``--slot N | --delivery TIME``: which book a command is about."""
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument(
        "--market",
        choices=sorted(MARKET_BY_LABEL),
        default="day_ahead",
        help="the book (default: %(default)s)",
    )
    slot = where.add_mutually_exclusive_group(required=True)
    slot.add_argument("--slot", type=int, metavar="N", help="delivery slot index")
    slot.add_argument(
        "--delivery", metavar="TIME", help="any time in the slot: 2024-05-01T18:30Z or epoch ms"
    )
    return where


def waiting_arguments() -> argparse.ArgumentParser:
    """``--no-wait``, ``--timeout`` and ``--sealed`` of a command that sends a transaction."""
    waiting = argparse.ArgumentParser(add_help=False)
    waiting.add_argument(
        "--no-wait", action="store_true", help="return once the node accepted the transaction"
    )
    waiting.add_argument(
        "--timeout",
        type=positive_seconds,
        default=DEFAULT_COMMIT_TIMEOUT_S,
        metavar="S",
        help="seconds to wait for the commit (default: %(default)g)",
    )
    add_sealed_flag(waiting, "seal the transaction to the validators")
    return waiting


def add_commands(
    actions: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    """Add ``order``, ``orders``, ``book`` and ``trades`` to ``gridchain wallet``."""
    order = actions.add_parser(
        "order",
        help="place, amend or cancel an order in a delivery slot's book",
        description="Orders for energy in a delivery slot (docs/markets.md).",
    )
    kinds = order.add_subparsers(dest="order_command", required=True, metavar="ACTION")

    waiting = waiting_arguments()
    where = book_arguments()

    for side in ("buy", "sell"):
        verb = "charge or import" if side == "buy" else "discharge or export"
        place = kinds.add_parser(
            side,
            parents=[common, where, waiting],
            help=f"offer to {side} energy ({verb}) in a delivery slot",
            description=f"Place a limit order to {side} energy; it matches at once against "
            "the book and rests with what is left until gate closure.",
        )
        place.add_argument(
            "--price",
            required=True,
            metavar="PRICE",
            help="limit price: credits/kWh (120.5) or mc/kWh (120500mc)",
        )
        place.add_argument(
            "--quantity", required=True, metavar="ENERGY", help="kWh (1.5) or Wh (1500Wh)"
        )
        place.add_argument(
            "--peak",
            metavar="ENERGY",
            help="iceberg: show at most this much at a time (below --quantity)",
        )
        place.add_argument(
            "--device",
            choices=sorted(DEVICE_BY_LABEL),
            default=DEFAULT_DEVICE[side],
            help="the device the energy is for (default: %(default)s)",
        )
        place.add_argument(
            "--expiry", metavar="TIME", help="withdraw the rest at this time (before gate closure)"
        )
        place.set_defaults(handler=cmd_place, side=side)

    cancel = kinds.add_parser(
        "cancel",
        parents=[common, waiting],
        help="cancel what is still open of one of your orders",
        description="Cancel the open part of an order; its matched part stays a contract.",
    )
    cancel.add_argument(
        "order_id",
        metavar="ORDER_ID",
        help="the order's id: 64 hex digits or a unique prefix (the lists show 16)",
    )
    cancel.set_defaults(handler=cmd_cancel)

    amend = kinds.add_parser(
        "amend",
        parents=[common, waiting],
        help="change the price and open quantity of one of your orders",
        description="Give the open part of an order a new price and quantity. Less at the "
        "same price keeps the order's place; anything else re-enters the book at the tail.",
    )
    amend.add_argument(
        "order_id",
        metavar="ORDER_ID",
        help="the order's id: 64 hex digits or a unique prefix (the lists show 16)",
    )
    amend.add_argument("--price", required=True, metavar="PRICE", help="the new limit price")
    amend.add_argument("--quantity", required=True, metavar="ENERGY", help="the new open quantity")
    amend.set_defaults(handler=cmd_amend)

    orders = actions.add_parser(
        "orders",
        parents=[common],
        help="list an account's orders",
        description="The orders of ADDRESS, or of the wallet's own address.",
    )
    orders.add_argument("address", nargs="?", metavar="ADDRESS", help="gc1... address")
    orders.add_argument("--slot", type=int, metavar="N", help="only this delivery slot")
    orders.add_argument(
        "--status",
        choices=("open", "filled", "cancelled", "expired", "rejected"),
        help="only orders in this state",
    )
    add_sealed_flag(orders, "read the wallet's own orders with a signed request, answered sealed")
    orders.set_defaults(handler=cmd_orders)

    book = actions.add_parser(
        "book",
        parents=[common, where],
        help="show a delivery slot's order book",
        description="The book's price levels with their displayed quantities (icebergs "
        "show their visible clip only).",
    )
    book.set_defaults(handler=cmd_book)

    trades = actions.add_parser(
        "trades",
        parents=[common],
        help="list trades (contracts awaiting settlement)",
        description="Trades of ADDRESS (default: the wallet's own), optionally of one slot.",
    )
    trades.add_argument("address", nargs="?", metavar="ADDRESS", help="gc1... address")
    trades.add_argument("--slot", type=int, metavar="N", help="only this delivery slot")
    trades.add_argument("--market", choices=sorted(MARKET_BY_LABEL), help="only this market")
    trades.add_argument(
        "--all", action="store_true", help="every account's trades, not only one address's"
    )
    add_sealed_flag(trades, "read the wallet's own trades with a signed request, answered sealed")
    trades.set_defaults(handler=cmd_trades)

    receipts = actions.add_parser(
        "receipts",
        parents=[common],
        help="list settlement receipts (trades settled against the meters)",
        description="Receipts of ADDRESS (default: the wallet's own): delivered energy, "
        "payment, fines and status of each settled trade; --json adds the meter readings and "
        "the pool settlement.",
    )
    receipts.add_argument("address", nargs="?", metavar="ADDRESS", help="gc1... address")
    receipts.add_argument("--slot", type=int, metavar="N", help="only this delivery slot")
    receipts.add_argument(
        "--all", action="store_true", help="every account's receipts, not only one address's"
    )
    add_sealed_flag(
        receipts, "read the wallet's own receipts with a signed request, answered sealed"
    )
    receipts.set_defaults(handler=cmd_receipts)

    outcomes = actions.add_parser(
        "outcomes",
        parents=[common],
        help="list what the chain made of the wallet's sealed transactions (read sealed)",
        description="Each sealed transaction of the wallet's account: applied, or refused "
        "with the refusal's code (the nonce is used either way; docs/sealed.md).",
    )
    outcomes.set_defaults(handler=cmd_outcomes)


# --- shared ------------------------------------------------------------------------------


def _slot_of(args: argparse.Namespace, markets: Markets) -> int:
    if args.slot is not None:
        if args.slot < 0:
            raise WalletArgumentError(f"--slot is a non-negative index, got {args.slot}")
        slot: int = args.slot
        return slot
    return parse_time_ms(args.delivery, "--delivery") // markets.slot_length_ms


def _sealed_reader(args: argparse.Namespace, address: str | None) -> SigningKey | None:
    """With ``--sealed``, the wallet's key (its own account only); otherwise None."""
    if not args.sealed:
        return None
    own, key = open_key(args)
    if address != own:
        raise WalletArgumentError("--sealed reads the wallet's own account only")
    return key


@json_errors
def cmd_outcomes(args: argparse.Namespace) -> int:
    """``gridchain wallet outcomes``: the wallet's sealed transactions and what became of them."""
    _, key = open_key(args)
    node_url = resolve_node_url(args.node)

    async def run() -> SealedOutcomeList:
        async with connect(node_url, args.ca) as node:
            found = await read_own(node, key, ReadKind.SEALED_OUTCOMES)
            if not isinstance(found, SealedOutcomeList):
                raise TypeError(type(found).__name__)
            return found

    found = asyncio.run(run())
    rows = [["transaction", "height", "outcome"]]
    rows += [
        [o.tx_hash, str(o.height), o.status + (f" ({o.code})" if o.code else "")]
        for o in found.outcomes
    ]
    human = format_table(rows) if found.outcomes else "no sealed transactions"
    emit(args, found.model_dump(mode="json"), human)
    return 0


def _own_address(args: argparse.Namespace) -> str:
    path = wallet_path(args)
    return keystore_address(read_keystore(path), path)


def _order_json(order: Order | None) -> dict[str, Any] | None:
    return None if order is None else order.model_dump(mode="json")


def _order_rows(order: Order, slot_length_ms: int | None) -> list[list[str]]:
    what = (
        f"{order.side} {format_energy(order.quantity_wh)} at {format_price(order.price_mc_per_kwh)}"
    )
    what += (
        f" ({order.device}{', iceberg ' + format_energy(order.peak_wh) if order.peak_wh else ''})"
    )
    rows = [
        ["order", order.id],
        ["what", what],
        ["book", f"{order.market} slot {order.slot}"],
    ]
    if slot_length_ms:
        start = order.slot * slot_length_ms
        rows.append(["delivery", f"{iso_ms(start)} to {iso_ms(start + slot_length_ms)}"])
    rows += [
        ["state", order.status],
        ["filled", format_energy(order.filled_wh)],
        ["open", format_energy(order.open_wh)],
    ]
    if order.cancelled_wh:
        rows.append(["cancelled", format_energy(order.cancelled_wh)])
    if order.locked_mc:
        rows.append(["escrow", f"{format_credits(order.locked_mc)} credits"])
    return rows


async def _send(
    args: argparse.Namespace,
    node: NodeClient,
    own: str,
    key: SigningKey,
    body: TxBody,
    *,
    escrow_mc: int = 0,
) -> dict[str, Any]:
    """Send an order transaction through the wallet's one submission path."""

    def refusal(spendable_mc: int) -> str:
        return (
            f"the order needs {format_credits(escrow_mc)} credits in escrow; {own} can spend "
            f"{format_credits(spendable_mc)} ({spendable_mc} mc)"
        )

    return await sign_and_submit(
        args,
        node,
        own,
        key,
        body,
        spend_mc=escrow_mc,
        action="trade",
        refusal=refusal,
        sealed=bool(getattr(args, "sealed", False)),
    )


async def _order_after(
    args: argparse.Namespace,
    node: NodeClient,
    key: SigningKey,
    result: dict[str, Any],
    order_id: str,
) -> Order | None:
    """The order once its transaction committed: read openly, or (for a sealed transaction)
    read sealed after checking the chain applied it."""
    if result["height"] is None:
        return None
    if not getattr(args, "sealed", False):
        return await node.order(order_id)
    outcome = await outcome_of(node, key, result["hash"])
    if outcome is not None:
        result["outcome"] = outcome.model_dump(mode="json")
    if outcome is None or outcome.status != "applied":
        code = "unknown" if outcome is None else outcome.code
        raise SealedTxRefusedError(
            f"the chain recorded sealed transaction {result['hash']} as refused ({code}); "
            "its nonce is used"
        )
    mine = await read_own(node, key, ReadKind.ORDERS)
    if not isinstance(mine, OrderList):
        raise TypeError(type(mine).__name__)
    return next((o for o in mine.orders if o.id == order_id), None)


# --- order buy / sell ----------------------------------------------------------------------


@json_errors
def cmd_place(args: argparse.Namespace) -> int:
    side: str = args.side
    price = parse_price(args.price)
    quantity = parse_energy(args.quantity)
    peak = 0 if args.peak is None else parse_energy(args.peak)
    if price == 0 or quantity == 0:
        raise WalletArgumentError("--price and --quantity must be positive")
    if args.peak is not None and not 0 < peak < quantity:
        raise WalletArgumentError("--peak must be positive and below --quantity")
    expiry = 0 if args.expiry is None else parse_time_ms(args.expiry, "--expiry")
    own, key = open_key(args)
    market: str = args.market
    node_url = resolve_node_url(args.node)

    async def run() -> tuple[dict[str, Any], Order | None, Markets]:
        async with connect(node_url, args.ca) as node:
            markets = await node.markets()
            slot = _slot_of(args, markets)
            gate = markets.gate_closure_of(market, slot)
            if markets.now_ms >= gate:
                raise GateClosedError(
                    f"{market} slot {slot} closed at {iso_ms(gate)} (gate closure); the first "
                    f"open slot is {markets.first_open_slot.get(market, '?')}"
                )
            body = PlaceOrder(
                market=int(MARKET_BY_LABEL[market]),
                slot=slot,
                side=int(SIDE_BY_LABEL[side]),
                device=int(DEVICE_BY_LABEL[args.device]),
                price_mc_per_kwh=price,
                quantity_wh=quantity,
                peak_wh=peak,
                expiry_ms=expiry,
            )
            escrow = -(-price * quantity // 1000) if side == "buy" else 0
            result = await _send(args, node, own, key, body, escrow_mc=escrow)
            order = await _order_after(args, node, key, result, result["hash"])
            return result, order, markets

    result, order, markets = asyncio.run(run())
    result["order_id"] = result["hash"]
    result["order"] = _order_json(order)
    rows = tx_rows(result)
    if order is not None:
        rows += _order_rows(order, markets.slot_length_ms)
    else:
        rows.append(["order", str(result["hash"])])
    emit(args, result, format_table(rows))
    return 0


# --- order cancel / amend ----------------------------------------------------------------


@json_errors
def cmd_cancel(args: argparse.Namespace) -> int:
    typed = id_text(args.order_id, "ORDER_ID")
    own, key = open_key(args)
    node_url = resolve_node_url(args.node)
    order_id = typed

    async def run() -> tuple[dict[str, Any], Order | None]:
        nonlocal order_id
        async with connect(node_url, args.ca) as node:
            order_id = await _resolve_order(args, node, own, key, typed)
            before = await node.order(order_id)
            if before.owner != own:
                raise WalletArgumentError(f"order {order_id} belongs to {before.owner}, not {own}")
            result = await _send(args, node, own, key, CancelOrder(bytes.fromhex(order_id)))
            after = await _order_after(args, node, key, result, order_id)
            return result, after

    result, after = asyncio.run(run())
    result["order_id"] = order_id
    result["order"] = _order_json(after)
    rows = tx_rows(result)
    if after is not None:
        rows += _order_rows(after, None)
    emit(args, result, format_table(rows))
    return 0


@json_errors
def cmd_amend(args: argparse.Namespace) -> int:
    typed = id_text(args.order_id, "ORDER_ID")
    price = parse_price(args.price)
    quantity = parse_energy(args.quantity)
    if price == 0 or quantity == 0:
        raise WalletArgumentError("--price and --quantity must be positive")
    own, key = open_key(args)
    node_url = resolve_node_url(args.node)
    order_id = typed

    async def run() -> tuple[dict[str, Any], Order | None]:
        nonlocal order_id
        async with connect(node_url, args.ca) as node:
            order_id = await _resolve_order(args, node, own, key, typed)
            before = await node.order(order_id)
            if before.owner != own:
                raise WalletArgumentError(f"order {order_id} belongs to {before.owner}, not {own}")
            escrow = 0
            if before.side == "buy":
                escrow = max(0, -(-price * quantity // 1000) - before.locked_mc)
            body = AmendOrder(bytes.fromhex(order_id), price, quantity)
            result = await _send(args, node, own, key, body, escrow_mc=escrow)
            after = await _order_after(args, node, key, result, order_id)
            return result, after

    result, after = asyncio.run(run())
    result["order_id"] = order_id
    result["order"] = _order_json(after)
    rows = tx_rows(result)
    if after is not None:
        rows += _order_rows(after, None)
    emit(args, result, format_table(rows))
    return 0


# --- orders / book / trades ----------------------------------------------------------------


@json_errors
def cmd_orders(args: argparse.Namespace) -> int:
    address = parse_address_arg(args.address, "ADDRESS") if args.address else _own_address(args)
    key = _sealed_reader(args, address)
    node_url = resolve_node_url(args.node)

    async def run() -> list[Order]:
        async with connect(node_url, args.ca) as node:
            if key is not None:
                mine = await read_own(node, key, ReadKind.ORDERS)
                if not isinstance(mine, OrderList):
                    raise TypeError(type(mine).__name__)
                return [
                    o
                    for o in mine.orders
                    if (args.slot is None or o.slot == args.slot)
                    and (args.status is None or o.status == args.status)
                ]
            return await node.orders(address, slot=args.slot, status=args.status)

    orders = asyncio.run(run())
    rows = [["order", "book", "slot", "side", "price/kWh", "kWh", "filled", "open", "state"]]
    for o in orders:
        rows.append(
            [
                o.id[:16],
                o.market,
                str(o.slot),
                o.side + (" (iceberg)" if o.peak_wh else ""),
                format_credits(o.price_mc_per_kwh),
                format_credits(o.quantity_wh),
                format_credits(o.filled_wh),
                format_credits(o.open_wh),
                o.status,
            ]
        )
    human = format_table(rows, right=frozenset({2, 4, 5, 6, 7})) if orders else "no orders"
    emit(
        args,
        {"address": address, "orders": [o.model_dump(mode="json") for o in orders]},
        human,
    )
    return 0


def _book_table(book: Book) -> str:
    state = "open" if book.open else "closed"
    head = (
        f"{book.market} slot {book.slot}  delivery {iso_ms(book.start_ms)}  "
        f"gate closure {iso_ms(book.gate_closure_ms)} ({state})"
    )
    rows = [["", "price/kWh", "kWh", "orders"]]
    for level in reversed(book.asks):
        rows.append(
            [
                "ask",
                format_credits(level.price_mc_per_kwh),
                format_credits(level.quantity_wh),
                str(level.orders),
            ]
        )
    for level in book.bids:
        rows.append(
            [
                "bid",
                format_credits(level.price_mc_per_kwh),
                format_credits(level.quantity_wh),
                str(level.orders),
            ]
        )
    if len(rows) == 1:
        return f"{head}\nthe book is empty"
    return f"{head}\n{format_table(rows, right=frozenset({1, 2, 3}))}"


@json_errors
def cmd_book(args: argparse.Namespace) -> int:
    market: str = args.market
    node_url = resolve_node_url(args.node)

    async def run() -> Book:
        async with connect(node_url, args.ca) as node:
            slot = args.slot if args.slot is not None else _slot_of(args, await node.markets())
            if slot < 0:
                raise WalletArgumentError(f"--slot is a non-negative index, got {slot}")
            return await node.book(market, slot)

    book = asyncio.run(run())
    data = book.model_dump(mode="json")
    emit(args, data, _book_table(book))
    return 0


def _trade_rows(trades: list[Trade], address: str | None) -> list[list[str]]:
    rows = [["trade", "book", "slot", "side", "price/kWh", "kWh", "credits", "counterparty"]]
    for t in trades:
        if address is None:
            side, other = "-", f"{t.seller[:14]}.. -> {t.buyer[:14]}.."
        elif t.buyer == address:
            side, other = "bought", t.seller
        else:
            side, other = "sold", t.buyer
        rows.append(
            [
                str(t.trade_id),
                t.market,
                str(t.slot),
                side,
                format_credits(t.price_mc_per_kwh),
                format_credits(t.quantity_wh),
                format_credits(t.amount_mc),
                other,
            ]
        )
    return rows


@json_errors
def cmd_trades(args: argparse.Namespace) -> int:
    address: str | None = None
    if not args.all:
        address = parse_address_arg(args.address, "ADDRESS") if args.address else _own_address(args)
    key = _sealed_reader(args, address)
    node_url = resolve_node_url(args.node)

    async def run() -> list[Trade]:
        async with connect(node_url, args.ca) as node:
            if key is not None:
                mine = await read_own(node, key, ReadKind.TRADES)
                if not isinstance(mine, TradeList):
                    raise TypeError(type(mine).__name__)
                return [
                    t
                    for t in mine.trades
                    if (args.slot is None or t.slot == args.slot)
                    and (args.market is None or t.market == args.market)
                ]
            return await node.trades(address=address, slot=args.slot, market=args.market)

    trades = asyncio.run(run())
    rows = _trade_rows(trades, address)
    human = format_table(rows, right=frozenset({0, 2, 4, 5, 6})) if trades else "no trades"
    emit(
        args,
        {"address": address, "trades": [t.model_dump(mode="json") for t in trades]},
        human,
    )
    return 0


def _receipt_rows(receipts: list[Receipt], address: str | None) -> list[list[str]]:
    rows = [
        ["trade", "slot", "side", "kWh", "delivered", "price/kWh", "paid", "fine", "status", "why"]
    ]
    for r in receipts:
        side = "-" if address is None else "bought" if r.buyer == address else "sold"
        rows.append(
            [
                str(r.trade_id),
                str(r.slot),
                side,
                format_credits(r.quantity_wh),
                format_credits(r.delivered_wh),
                format_credits(r.price_mc_per_kwh),
                format_credits(r.paid_mc),
                format_credits(r.fine_paid_mc),
                r.status,
                r.shortfall_reason or "-",
            ]
        )
    return rows


@json_errors
def cmd_receipts(args: argparse.Namespace) -> int:
    """``gridchain wallet receipts``: what settlement made of one's trades."""
    address: str | None = None
    if not args.all:
        address = parse_address_arg(args.address, "ADDRESS") if args.address else _own_address(args)
    if args.slot is not None and args.slot < 0:
        raise WalletArgumentError(f"--slot is a non-negative index, got {args.slot}")
    key = _sealed_reader(args, address)
    node_url = resolve_node_url(args.node)

    async def run() -> list[Receipt]:
        async with connect(node_url, args.ca) as node:
            if key is not None:
                mine = await read_own(node, key, ReadKind.RECEIPTS)
                if not isinstance(mine, ReceiptList):
                    raise TypeError(type(mine).__name__)
                return [r for r in mine.receipts if args.slot is None or r.slot == args.slot]
            return await node.receipts(address=address, slot=args.slot)

    found = asyncio.run(run())
    rows = _receipt_rows(found, address)
    human = format_table(rows, right=frozenset({0, 1, 3, 4, 5, 6, 7})) if found else "no receipts"
    emit(args, {"address": address, "receipts": [r.model_dump(mode="json") for r in found]}, human)
    return 0
