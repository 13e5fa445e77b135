"""``gridchain wallet market``, ``offers`` and ``take``: the market at a glance, a book's
individual offers, and taking one at its price (seed 000's trade step 2).

``take`` places an order of the opposite side at the offer's price for its displayed quantity
in the offer's book.  The book matches an incoming order against every resting order it
crosses, in the chain's priority (price-time, or AdBEV's weighted rank), so a buy at the
offer's price meets any cheaper or earlier offer first.  The wallet therefore checks, from the
book's offers in matching order (``GET .../offers``), that the chosen offer is the first the
order would meet, and refuses with the offers ahead named otherwise: a take never silently
trades with somebody else.  If another order takes the offer between the check and the block,
the wallet says so and names the order that now rests in the book.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from gridchain.api.client import NodeClient, resolve_node_url
from gridchain.api.models import Markets, Offer, Offers, Order, OrderList, SlotStats
from gridchain.protocol.crypto import SigningKey
from gridchain.protocol.errors import GridchainError
from gridchain.protocol.sealed_read import ReadKind
from gridchain.protocol.tx import DEVICE_BY_LABEL, MARKET_BY_LABEL, SIDE_BY_LABEL, PlaceOrder
from gridchain.wallet.commands import (
    WalletArgumentError,
    connect,
    emit,
    format_table,
    json_errors,
    open_key,
    tx_rows,
)
from gridchain.wallet.ids import id_text, resolve
from gridchain.wallet.sealing import read_own
from gridchain.wallet.trading import (
    DEFAULT_DEVICE,
    GateClosedError,
    _order_after,
    _order_rows,
    _send,
    _slot_of,
    book_arguments,
    iso_ms,
    waiting_arguments,
)
from gridchain.wallet.units import format_credits, format_energy, format_price

#: Open slots per market ``wallet market`` shows by default, and settled slots it looks back.
SHOWN_SLOTS = 4
POOL_LOOKBACK = 12
STATS_MAX = 96


class OfferNotFirstError(GridchainError):
    """An order at the offer's price would meet other offers first (the message names them)."""

    code = "offer_not_first"


class OwnOfferError(GridchainError):
    """The offer is the wallet's own order: taking it would be a self-trade the book cancels."""

    code = "own_offer"


# --- parser --------------------------------------------------------------------------------


def add_commands(
    actions: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    """Add ``market``, ``offers`` and ``take`` to ``gridchain wallet``."""
    market = actions.add_parser(
        "market",
        parents=[common],
        help="the current and first open slots, best prices, pool prices and the penalty",
        description="What the market looks like now: the current slot, each market's first "
        "open slots with their best bid and ask, the pool prices of recently settled slots, "
        "the tariffs now, and the penalty a seller pays per kWh it does not deliver.",
    )
    market.add_argument(
        "--slots",
        type=int,
        default=SHOWN_SLOTS,
        metavar="N",
        help="open slots shown per market (default: %(default)s)",
    )
    market.set_defaults(handler=cmd_market)

    offers = actions.add_parser(
        "offers",
        parents=[common, book_arguments()],
        help="list a slot's individual offers in the order the book matches them",
        description="Each resting order of the book (asks, then bids) with its id, price "
        "and displayed quantity, first-matched first; `wallet take ID` takes one.",
    )
    offers.set_defaults(handler=cmd_offers)

    take = actions.add_parser(
        "take",
        parents=[common, book_arguments(), waiting_arguments()],
        help="take one offer at its price: buy an ask (or sell to a bid)",
        description="Place an order of the other side at the offer's price for its "
        "displayed quantity, after checking it is the first offer such an order meets.",
    )
    take.add_argument(
        "offer_id", metavar="OFFER_ID", help="the offer's id or a unique prefix (`wallet offers`)"
    )
    take.add_argument(
        "--device",
        choices=sorted(DEVICE_BY_LABEL),
        help="the device the energy is for (default: Load to buy, PV to sell)",
    )
    take.set_defaults(handler=cmd_take)


# --- market --------------------------------------------------------------------------------


def _price(mc: int | None) -> str:
    return "-" if mc is None else format_credits(mc)


@json_errors
def cmd_market(args: argparse.Namespace) -> int:
    shown: int = args.slots
    if not 1 <= shown <= STATS_MAX // 2:
        raise WalletArgumentError(f"--slots is 1 to {STATS_MAX // 2}, got {shown}")
    node_url = resolve_node_url(args.node)

    async def run() -> tuple[Markets, list[SlotStats], list[SlotStats], Any]:
        async with connect(node_url, args.ca) as node:
            markets = await node.markets()
            first = min(markets.first_open_slot.values())
            last = max(markets.first_open_slot.values()) + shown
            ahead = await node.slot_stats(first=first, count=min(STATS_MAX, last - first))
            back = max(0, markets.current_slot - POOL_LOOKBACK)
            settled = await node.slot_stats(first=back, count=markets.current_slot - back or 1)
            tariff = await node.pool_prices(slot=markets.current_slot, count=1)
            return markets, list(ahead.slots), list(settled.slots), tariff

    markets, ahead, settled, tariff = asyncio.run(run())
    books = []
    for label, first_open in sorted(markets.first_open_slot.items()):
        for stats in ahead:
            if first_open <= stats.slot < first_open + shown:
                book = next(m for m in stats.markets if m.market == label)
                books.append({"slot": stats.slot, "start_ms": stats.start_ms, **book.model_dump()})
    pool = [
        {
            "slot": s.slot,
            "receipts": s.settlement.receipts,
            "p_sell_mc_per_kwh": s.settlement.pool_p_sell_mc_per_kwh,
            "p_buy_mc_per_kwh": s.settlement.pool_p_buy_mc_per_kwh,
        }
        for s in settled
        if s.settlement.receipts
    ]
    now = tariff.intervals[0]
    data = {
        "now_ms": markets.now_ms,
        "current_slot": markets.current_slot,
        "first_open_slot": markets.first_open_slot,
        "slot_length_ms": markets.slot_length_ms,
        "penalty_mc_per_kwh": markets.penalty_mc_per_kwh,
        "settlement_grace_ms": markets.settlement_grace_ms,
        "tariff": {
            "slot": now.slot,
            "r_buy_mc_per_kwh": now.r_buy_mc_per_kwh,
            "r_sell_mc_per_kwh": now.r_sell_mc_per_kwh,
        },
        "books": books,
        "pool": pool,
    }
    penalty = (
        "-" if markets.penalty_mc_per_kwh is None else format_price(markets.penalty_mc_per_kwh)
    )
    head = format_table(
        [
            ["now", f"{iso_ms(markets.now_ms)}  slot {markets.current_slot}"],
            [
                "first open",
                ", ".join(f"{k} {v}" for k, v in sorted(markets.first_open_slot.items())),
            ],
            [
                "tariffs now",
                f"retail {format_price(now.r_buy_mc_per_kwh)}, "
                f"feed-in {format_price(now.r_sell_mc_per_kwh)}",
            ],
            ["penalty", f"{penalty} a seller pays per kWh sold and not delivered"],
        ]
    )
    rows = [["book", "slot", "delivery", "best bid", "best ask", "bid kWh", "ask kWh", "trades"]]
    for b in books:
        rows.append(
            [
                str(b["market"]),
                str(b["slot"]),
                iso_ms(int(b["start_ms"])),
                _price(b["best_bid"]),
                _price(b["best_ask"]),
                format_credits(int(b["bid_depth_wh"])),
                format_credits(int(b["ask_depth_wh"])),
                str(b["trades"]),
            ]
        )
    body = format_table(rows, right=frozenset({1, 3, 4, 5, 6, 7}))
    if pool:
        lines = [["settled slot", "pool sell/kWh", "pool buy/kWh", "receipts"]]
        lines += [
            [
                str(p["slot"]),
                _price(p["p_sell_mc_per_kwh"]),
                _price(p["p_buy_mc_per_kwh"]),
                str(p["receipts"]),
            ]
            for p in pool
        ]
        recent = format_table(lines, right=frozenset({0, 1, 2, 3}))
    else:
        recent = f"no slot settled in the last {POOL_LOOKBACK}"
    emit(args, data, f"{head}\n\n{body}\n\n{recent}")
    return 0


# --- offers --------------------------------------------------------------------------------


def _offer_rows(offers: Offers) -> list[list[str]]:
    rows = [["side", "#", "offer", "price/kWh", "kWh", ""]]
    for offer in [*offers.asks, *offers.bids]:
        rows.append(
            [
                "ask" if offer.side == "sell" else "bid",
                str(offer.priority),
                offer.id[:16],
                format_credits(offer.price_mc_per_kwh),
                format_credits(offer.display_wh),
                "iceberg (clip shown)" if offer.iceberg else "",
            ]
        )
    return rows


async def _offers(args: argparse.Namespace, node: NodeClient) -> Offers:
    slot = args.slot if args.slot is not None else _slot_of(args, await node.markets())
    if slot < 0:
        raise WalletArgumentError(f"--slot is a non-negative index, got {slot}")
    return await node.offers(args.market, slot)


@json_errors
def cmd_offers(args: argparse.Namespace) -> int:
    node_url = resolve_node_url(args.node)

    async def run() -> Offers:
        async with connect(node_url, args.ca) as node:
            return await _offers(args, node)

    offers = asyncio.run(run())
    state = "open" if offers.open else "closed"
    head = f"{offers.market} slot {offers.slot} ({state}), {offers.matching_rule} matching"
    found = offers.asks or offers.bids
    body = format_table(_offer_rows(offers), right=frozenset({1, 3, 4})) if found else "no offers"
    emit(args, offers.model_dump(mode="json"), f"{head}\n{body}")
    return 0


# --- take ----------------------------------------------------------------------------------


def offers_ahead(offers: Offers, target: Offer) -> list[Offer]:
    """The offers an order taking ``target`` (the other side, at its price) would meet before
    it: those of its side that cross that price and come earlier in matching order."""
    price = target.price_mc_per_kwh
    if target.side == "sell":
        crossing = [o for o in offers.asks if o.price_mc_per_kwh <= price]
    else:
        crossing = [o for o in offers.bids if o.price_mc_per_kwh >= price]
    return [o for o in crossing if o.priority < target.priority]


async def _own_open_ids(
    args: argparse.Namespace, node: NodeClient, own: str, key: SigningKey, slot: int
) -> set[str]:
    if getattr(args, "sealed", False):
        mine = await read_own(node, key, ReadKind.ORDERS)
        if not isinstance(mine, OrderList):
            raise TypeError(type(mine).__name__)
        return {o.id for o in mine.orders if o.slot == slot and o.status == "open"}
    return {o.id for o in await node.orders(own, slot=slot, status="open")}


@json_errors
def cmd_take(args: argparse.Namespace) -> int:
    typed = id_text(args.offer_id, "OFFER_ID")
    own, key = open_key(args)
    node_url = resolve_node_url(args.node)

    async def run() -> tuple[dict[str, Any], Offer, Order | None, Markets]:
        async with connect(node_url, args.ca) as node:
            markets = await node.markets()
            offers = await _offers(args, node)
            where = f"the offers of {offers.market} slot {offers.slot}"
            chosen = resolve(typed, [o.id for o in [*offers.asks, *offers.bids]], "offer", where)
            offer = next(o for o in [*offers.asks, *offers.bids] if o.id == chosen)
            if not offers.open:
                raise GateClosedError(
                    f"{offers.market} slot {offers.slot} is past its gate closure; the first "
                    f"open slot is {markets.first_open_slot.get(offers.market, '?')}"
                )
            if offer.id in await _own_open_ids(args, node, own, key, offers.slot):
                raise OwnOfferError(f"offer {offer.id} is your own order")
            ahead = offers_ahead(offers, offer)
            if ahead:
                named = ", ".join(
                    f"{o.id[:16]} at {format_price(o.price_mc_per_kwh)}" for o in ahead[:5]
                )
                raise OfferNotFirstError(
                    f"an order at {format_price(offer.price_mc_per_kwh)} would meet "
                    f"{len(ahead)} other offer(s) first ({named}); take the first one, or "
                    "place an order with `wallet order`"
                )
            side = "buy" if offer.side == "sell" else "sell"
            device = args.device or DEFAULT_DEVICE[side]
            body = PlaceOrder(
                market=int(MARKET_BY_LABEL[offers.market]),
                slot=offers.slot,
                side=int(SIDE_BY_LABEL[side]),
                device=int(DEVICE_BY_LABEL[device]),
                price_mc_per_kwh=offer.price_mc_per_kwh,
                quantity_wh=offer.display_wh,
            )
            escrow = -(-offer.price_mc_per_kwh * offer.display_wh // 1000) if side == "buy" else 0
            result = await _send(args, node, own, key, body, escrow_mc=escrow)
            order = await _order_after(args, node, key, result, result["hash"])
            return result, offer, order, markets

    result, offer, order, markets = asyncio.run(run())
    result["order_id"] = result["hash"]
    result["offer"] = offer.model_dump(mode="json")
    result["order"] = None if order is None else order.model_dump(mode="json")
    result["taken"] = None if order is None else order.filled_wh == offer.display_wh
    rows = tx_rows(result)
    verb = "bought" if offer.side == "sell" else "sold"
    if order is None:
        rows.append(["offer", f"{offer.id} (not checked: --no-wait)"])
    elif result["taken"]:
        rows.append(["took", f"offer {offer.id}"])
        rows.append(
            [verb, f"{format_energy(offer.display_wh)} at {format_price(offer.price_mc_per_kwh)}"]
        )
    else:
        rows.append(
            [
                "not taken",
                f"offer {offer.id[:16]} was matched or withdrawn first; "
                f"{format_energy(order.open_wh)} of your order rest in the book "
                f"(cancel: wallet order cancel {order.id[:16]})",
            ]
        )
    if order is not None:
        rows += _order_rows(order, markets.slot_length_ms)
    emit(args, result, format_table(rows))
    return 0
