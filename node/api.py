"""The node's HTTP API (DESIGN section 10), JSON under /v1.

Every refusal is a 4xx with ``{"error": {"code", "message"}}``: the error middleware maps the
project's typed errors by their ``code`` and ``http_status``, aiohttp's own (unknown route,
wrong method, body too large) to the same shape, and anything unexpected to a 500 with no
stack trace (the trace goes to the log).  Handlers only read, or hand a decoded transaction to
the runtime, so a refused request writes nothing.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import WSMsgType, web

from gridchain.market.accounts import get_account, get_participant
from gridchain.market.book import BUY, SELL
from gridchain.market.cd_requests import (
    CD_RECORD_PREFIX,
    CDRecord,
    CDStatus,
    get_head,
    get_request,
    open_requests,
)
from gridchain.market.cd_schedule import Decision, get_decision, latest_decisions
from gridchain.market.meters import get_meter, readings_from
from gridchain.market.orders import (
    OrderStatus,
    book_levels,
    contracts,
    get_order,
    orders_of,
)
from gridchain.market.pool import sdr_prices
from gridchain.market.settlement import receipts
from gridchain.node.openapi import openapi_document
from gridchain.node.runtime import Node
from gridchain.node.views import (
    cd_view,
    committed_view,
    contract_view,
    decision_view,
    market_event_view,
    meter_view,
    order_view,
    reading_view,
    receipt_view,
    tx_view,
)
from gridchain.protocol.address import format_address, parse_address
from gridchain.protocol.encoding import decode
from gridchain.protocol.errors import DecodeError, GridchainError
from gridchain.protocol.tx import MARKET_BY_LABEL, Market, decode_tx

NODE_KEY = web.AppKey("node", Node)
log = structlog.get_logger("gridchain.api")


class RequestError(GridchainError):
    code = "invalid_request"


class MalformedJsonError(RequestError):
    code = "malformed_json"


class NotFoundError(GridchainError):
    code = "not_found"
    http_status = 404


class UnavailableError(GridchainError):
    code = "unavailable"
    http_status = 503


_HTTP_CODES = {
    404: "not_found",
    405: "method_not_allowed",
    413: "oversize",
    415: "unsupported_media_type",
}


def error_response(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except GridchainError as exc:
        return error_response(exc.http_status, exc.code, exc.message)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "http_error")
        return error_response(exc.status, code, exc.reason or code)
    except asyncio.CancelledError:
        raise
    except Exception:  # the last line of defence: never leak a trace
        log.exception("unhandled error", path=request.path)
        return error_response(500, "internal", "internal error")


def _node(request: web.Request) -> Node:
    return request.app[NODE_KEY]


def _parse_hash(text: str) -> bytes:
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise RequestError(f"a hash is 64 hex digits, got {text!r}") from None
    if len(raw) != 32:
        raise RequestError(f"a hash is 64 hex digits, got {len(text)} characters")
    return raw


#: Transactions one batch request may carry.
MAX_BATCH_TXS = 1000


def _hex_tx(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise RequestError(f"{what} must be a hex string")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise RequestError(f"{what} is not valid hex") from None


async def _read_txs(request: web.Request) -> tuple[list[bytes], bool]:
    """The raw transactions of a submission and whether it was the batch form."""
    body = await request.read()
    if request.content_type in ("application/msgpack", "application/octet-stream"):
        return [body], False
    try:
        doc = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise MalformedJsonError("request body is not valid JSON") from None
    if isinstance(doc, dict) and set(doc) == {"tx"}:
        return [_hex_tx(doc["tx"], '"tx"')], False
    if isinstance(doc, dict) and set(doc) == {"txs"} and isinstance(doc["txs"], list):
        if not 1 <= len(doc["txs"]) <= MAX_BATCH_TXS:
            raise RequestError(f'"txs" holds 1 to {MAX_BATCH_TXS} transactions')
        return [_hex_tx(v, f'"txs"[{i}]') for i, v in enumerate(doc["txs"])], True
    raise RequestError(
        'expected {"tx": "<hex of the encoded transaction>"} or {"txs": ["<hex>", ...]}'
    )


def _admit(node: Node, raw: bytes) -> str:
    try:
        tx = decode_tx(raw)
    except DecodeError as exc:
        node.metrics.txs_rejected.labels(code=exc.code).inc()
        raise
    return node.submit(tx, raw).hex()


async def post_tx(request: web.Request) -> web.Response:
    """Submit one transaction, or a batch: each item of a batch is admitted or refused alone
    (in order, so one sender's nonces may follow each other within a batch)."""
    node = _node(request)
    if node.halted:
        raise UnavailableError(f"node halted: {node.halted}")
    raws, batch = await _read_txs(request)
    if not batch:
        return web.json_response({"hash": _admit(node, raws[0]), "status": "pending"}, status=202)
    results: list[dict[str, object]] = []
    for raw in raws:
        try:
            results.append({"hash": _admit(node, raw), "status": "pending"})
        except GridchainError as exc:
            results.append({"error": {"code": exc.code, "message": exc.message}})
    return web.json_response({"results": results}, status=200)


async def get_tx(request: web.Request) -> web.Response:
    node = _node(request)
    tx_hash = _parse_hash(request.match_info["hash"])
    location = node.store.tx_location(tx_hash)
    if location is not None:
        height, index = location
        committed = node.store.get_block(height)
        if committed is not None:
            return web.json_response(
                {
                    "hash": tx_hash.hex(),
                    "status": "committed",
                    "height": height,
                    "index": index,
                    "block_hash": committed.block.hash().hex(),
                    "tx": tx_view(committed.block.txs[index]),
                }
            )
    pending = node.mempool.get(tx_hash)
    if pending is not None:
        return web.json_response(
            {
                "hash": tx_hash.hex(),
                "status": "pending",
                "height": None,
                "index": None,
                "tx": tx_view(pending),
            }
        )
    raise NotFoundError(f"no transaction {tx_hash.hex()}")


async def get_block(request: web.Request) -> web.Response:
    node = _node(request)
    which = request.match_info["height"]
    if which == "latest":
        height = node.head.height
    elif which.isdigit() and len(which) <= 20:
        height = int(which)
    else:
        raise RequestError(f"a block is named by its height or 'latest', got {which!r}")
    if height == 0:
        raise NotFoundError("height 0 is the genesis state, not a block")
    committed = node.store.get_block(height)
    if committed is None:
        raise NotFoundError(f"no block at height {height} (head is {node.head.height})")
    return web.json_response(committed_view(committed))


async def get_account_view(request: web.Request) -> web.Response:
    node = _node(request)
    address = parse_address(request.match_info["address"])
    account = get_account(node.state, address)
    pending = get_account(node.mempool.pending_state, address)
    participant = get_participant(node.state, address)
    return web.json_response(
        {
            "address": format_address(address),
            "balance_mc": account.balance_mc,
            "locked_mc": account.locked_mc,
            "spendable_mc": pending.balance_mc - pending.locked_mc,
            "nonce": account.nonce,
            "pending_nonce": pending.nonce,
            "registered": participant is not None or address == node.app.governance_address,
            "name": None if participant is None else participant.name,
        }
    )


# --- markets -----------------------------------------------------------------------------

#: Most items one list request returns.
MAX_LIST = 1000
HOUR_MS = 3_600_000
#: SDR values (in thousandths) at which /v1/pool/prices shows the price curve.
CURVE_PERMILLE = (0, 250, 500, 750, 1000)


def _uint(text: str, what: str, *, lo: int = 0, hi: int = 2**64 - 1) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 20:
        raise RequestError(f"{what} is a non-negative integer, got {text!r}")
    value = int(text)
    if not lo <= value <= hi:
        raise RequestError(f"{what} must be {lo} to {hi}, got {value}")
    return value


def _query_opt(request: web.Request, name: str, *, lo: int = 0, hi: int = 2**64 - 1) -> int | None:
    text = request.query.get(name)
    return None if text is None else _uint(text, name, lo=lo, hi=hi)


def _query_int(
    request: web.Request, name: str, default: int, *, lo: int = 0, hi: int = 2**64 - 1
) -> int:
    value = _query_opt(request, name, lo=lo, hi=hi)
    return default if value is None else value


def _market(text: str) -> Market:
    if text in MARKET_BY_LABEL:
        return MARKET_BY_LABEL[text]
    if text in ("0", "1"):
        return Market(int(text))
    raise RequestError(f"market is day_ahead or intraday, got {text!r}")


def _query_address(request: web.Request, name: str) -> bytes | None:
    text = request.query.get(name)
    return None if text is None else parse_address(text)


def _limit(request: web.Request) -> int:
    return _query_int(request, "limit", 100, lo=1, hi=MAX_LIST)


async def get_markets(request: web.Request) -> web.Response:
    """The market rules of this chain and the slots open for trading now."""
    node = _node(request)
    params = node.genesis.params
    exchange = node.app.exchange
    now = node.clock()
    first_open = {
        m.label: (now + params.gate_closure_lead_ms(m == Market.DAY_AHEAD)) // params.slot_length_ms
        + 1
        for m in Market
    }
    return web.json_response(
        {
            "markets": [m.label for m in Market],
            "slot_length_ms": params.slot_length_ms,
            "gate_closure_ms": params.gate_closure_ms,
            "day_ahead_gate_closure_ms": params.gate_closure_lead_ms(True),
            "order_horizon_ms": params.order_horizon_ms,
            "matching_rule": params.matching_rule,
            "adbev_price_weight": params.adbev_price_weight,
            "adbev_time_weight": params.adbev_time_weight,
            "iceberg_execution": params.iceberg_execution,
            "iceberg_waiting_limit_ms": params.iceberg_waiting_limit_ms,
            "now_ms": now,
            "current_slot": exchange.slot_of(now),
            "first_open_slot": first_open,
        }
    )


def _levels(rows: list[tuple[int, int, int]]) -> list[dict[str, int]]:
    return [{"price_mc_per_kwh": p, "quantity_wh": q, "orders": n} for p, q, n in rows]


async def get_book(request: web.Request) -> web.Response:
    """One book's price levels, best first, with displayed quantities only."""
    node = _node(request)
    market = _market(request.match_info["market"])
    slot = _uint(request.match_info["slot"], "slot")
    exchange = node.app.exchange
    bids = book_levels(node.state, market, slot, BUY)
    asks = book_levels(node.state, market, slot, SELL)
    gate = exchange.gate_closure_ms(market, slot)
    start = exchange.slot_start_ms(slot)
    return web.json_response(
        {
            "market": market.label,
            "slot": slot,
            "start_ms": start,
            "end_ms": start + node.genesis.params.slot_length_ms,
            "gate_closure_ms": gate,
            "open": node.clock() < gate,
            "height": node.head.height,
            "matching_rule": node.genesis.params.matching_rule,
            "bids": _levels(bids),
            "asks": _levels(asks),
            "best_bid": bids[0][0] if bids else None,
            "best_ask": asks[0][0] if asks else None,
        }
    )


async def get_order_by_id(request: web.Request) -> web.Response:
    node = _node(request)
    order_id = _parse_hash(request.match_info["id"])
    record = get_order(node.state, order_id)
    if record is None:
        raise NotFoundError(f"no order {order_id.hex()} (an order's id is its transaction hash)")
    return web.json_response(order_view(record))


async def list_orders(request: web.Request) -> web.Response:
    """An address's orders (by slot, then id), optionally of one slot and status."""
    node = _node(request)
    address = _query_address(request, "address")
    if address is None:
        raise RequestError("GET /v1/orders needs ?address=gc1...")
    slot = _query_opt(request, "slot")
    status_text = request.query.get("status")
    statuses = {s.label: s for s in OrderStatus}
    if status_text is not None and status_text not in statuses:
        raise RequestError(f"status is one of {', '.join(statuses)}, got {status_text!r}")
    limit = _limit(request)
    out = []
    for record in orders_of(node.state, address, slot):
        if status_text is not None and record.status != statuses[status_text]:
            continue
        out.append(order_view(record))
        if len(out) >= limit:
            break
    return web.json_response({"address": format_address(address), "orders": out})


async def list_trades(request: web.Request) -> web.Response:
    """Trades (contracts) by slot and trade id, filtered by address, slot and market."""
    node = _node(request)
    address = _query_address(request, "address")
    slot = _query_opt(request, "slot")
    market_text = request.query.get("market")
    market = None if market_text is None else _market(market_text)
    limit = _limit(request)
    out = []
    for contract in contracts(node.state, party=address, slot=slot):
        if market is not None and contract.market != market:
            continue
        out.append(contract_view(contract))
        if len(out) >= limit:
            break
    return web.json_response({"trades": out})


async def get_pool_prices(request: web.Request) -> web.Response:
    """The real-time pool's tariffs and SDR price curve per interval (and a quote)."""
    node = _node(request)
    params = node.genesis.params
    exchange = node.app.exchange
    first = _query_int(request, "slot", exchange.slot_of(node.clock()))
    count = _query_int(request, "count", 4, lo=1, hi=96)
    supply = _query_opt(request, "supply_wh", hi=2**62)
    demand = _query_opt(request, "demand_wh", hi=2**62)
    if (supply is None) != (demand is None):
        raise RequestError("a quote needs both supply_wh and demand_wh")
    intervals = []
    for slot in range(first, first + count):
        start = exchange.slot_start_ms(slot)
        hour = start // HOUR_MS % 24
        tariff = node.genesis.tariff_at_hour(hour)
        r_buy, r_sell = tariff.retail_mc_per_kwh, tariff.feed_in_mc_per_kwh
        curve = []
        for permille in CURVE_PERMILLE:
            prices = sdr_prices(permille, 1000, r_buy, r_sell)
            curve.append(
                {
                    "sdr_permille": permille,
                    "p_sell_mc_per_kwh": prices.p_sell_mc_per_kwh,
                    "p_buy_mc_per_kwh": prices.p_buy_mc_per_kwh,
                }
            )
        interval: dict[str, object] = {
            "slot": slot,
            "start_ms": start,
            "end_ms": start + params.slot_length_ms,
            "hour_utc": hour,
            "r_buy_mc_per_kwh": r_buy,
            "r_sell_mc_per_kwh": r_sell,
            "curve": curve,
        }
        if supply is not None and demand is not None:
            quote = sdr_prices(supply, demand, r_buy, r_sell)
            interval["quote"] = {
                "tsp_wh": supply,
                "tbp_wh": demand,
                "p_sell_mc_per_kwh": quote.p_sell_mc_per_kwh,
                "p_buy_mc_per_kwh": quote.p_buy_mc_per_kwh,
            }
        intervals.append(interval)
    return web.json_response({"intervals": intervals})


# --- meters and settlement ---------------------------------------------------------------


def _meter_id(request: web.Request) -> str:
    meter_id = request.match_info["id"]
    if not 1 <= len(meter_id.encode("utf-8")) <= 64:
        raise RequestError("a meter id is 1 to 64 bytes of UTF-8")
    return meter_id


async def get_meter_view(request: web.Request) -> web.Response:
    """A meter and the head of its reading chain (a bridge resumes from it)."""
    node = _node(request)
    meter_id = _meter_id(request)
    meter = get_meter(node.state, meter_id)
    if meter is None:
        raise NotFoundError(f"no meter {meter_id!r}")
    return web.json_response(meter_view(meter))


async def list_meter_readings(request: web.Request) -> web.Response:
    """A meter's accepted readings in sequence order, from ``from_seq`` (default 0)."""
    node = _node(request)
    meter_id = _meter_id(request)
    meter = get_meter(node.state, meter_id)
    if meter is None:
        raise NotFoundError(f"no meter {meter_id!r}")
    from_seq = _query_int(request, "from_seq", 0)
    found = readings_from(node.state, meter_id, from_seq, _limit(request))
    return web.json_response({"meter_id": meter_id, "readings": [reading_view(r) for r in found]})


async def list_settlements(request: web.Request) -> web.Response:
    """Settlement receipts by slot and trade id, of one address (buyer or seller) and slot."""
    node = _node(request)
    address = _query_address(request, "address")
    slot = _query_opt(request, "slot")
    found = receipts(node.state, party=address, slot=slot)[: _limit(request)]
    return web.json_response({"receipts": [receipt_view(r) for r in found]})


# --- C&D requests and the schedule -------------------------------------------------------

#: Decisions one /v1/schedule request returns by default and at most.
SCHEDULE_DEFAULT = 10
SCHEDULE_MAX = 100


def _decision_views(node: Node, decisions: list[Decision]) -> list[dict[str, Any]]:
    clock = node.app.interval_clock
    records: dict[bytes, CDRecord] = {}
    for decision in decisions:
        for entry in decision.entries:
            if entry.request_id not in records:
                record = get_request(node.state, entry.request_id)
                if record is not None:
                    records[entry.request_id] = record
    return [decision_view(d, clock, records) for d in decisions]


async def get_schedule(request: web.Request) -> web.Response:
    """The committed setpoints: the latest decisions (newest first), or one interval's."""
    node = _node(request)
    interval = _query_opt(request, "interval")
    limit = _query_int(request, "limit", SCHEDULE_DEFAULT, lo=1, hi=SCHEDULE_MAX)
    state = node.state
    head = get_head(state)
    if interval is not None:
        if "limit" in request.query:
            raise RequestError("give ?interval=N or ?limit=N, not both")
        found = get_decision(state, interval)
        if found is None:
            raise NotFoundError(
                f"no decision kept for interval {interval} (next to decide: "
                f"{head.next_interval}); an interval without vehicles or without a block is "
                "never decided, and old decisions are only in their blocks"
            )
        decisions = [found]
    else:
        decisions = latest_decisions(state, limit)
    clock = node.app.interval_clock
    return web.json_response(
        {
            "next_interval": head.next_interval,
            "open_requests": head.open_requests,
            "interval_ms": clock.interval_ms,
            "interval_minutes": clock.interval_minutes,
            "current_interval": clock.interval_at(node.clock()),
            "decisions": _decision_views(node, decisions),
        }
    )


async def get_cd_request(request: web.Request) -> web.Response:
    node = _node(request)
    request_id = _parse_hash(request.match_info["id"])
    record = get_request(node.state, request_id)
    if record is None:
        raise NotFoundError(
            f"no C&D request {request_id.hex()} (its id is the hash of its CDRequest "
            "transaction; a pending or refused one has no record)"
        )
    return web.json_response(cd_view(request_id, record, node.app.interval_clock))


def _all_requests(node: Node) -> list[tuple[bytes, CDRecord]]:
    out = []
    for key, raw in node.state.scan(CD_RECORD_PREFIX):
        out.append((key[len(CD_RECORD_PREFIX) :], decode(raw, CDRecord)))
    return out


async def list_cd_requests(request: web.Request) -> web.Response:
    """C&D requests, newest first (by submission height, then id), of one owner and status."""
    node = _node(request)
    owner = _query_address(request, "owner")
    status_text = request.query.get("status")
    statuses = {s.label: s for s in CDStatus}
    if status_text is not None and status_text not in statuses:
        raise RequestError(f"status is one of {', '.join(statuses)}, got {status_text!r}")
    limit = _limit(request)
    if status_text == CDStatus.OPEN.label:
        candidates = list(open_requests(node.state))  # the open index: no full scan
    else:
        candidates = _all_requests(node)
    matches = [
        (rid, rec)
        for rid, rec in candidates
        if (owner is None or rec.owner == owner)
        and (status_text is None or rec.status == statuses[status_text])
    ]
    matches.sort(key=lambda item: (-item[1].submitted_height, item[0]))
    clock = node.app.interval_clock
    return web.json_response(
        {
            "owner": None if owner is None else format_address(owner),
            "requests": [cd_view(rid, rec, clock) for rid, rec in matches[:limit]],
        }
    )


async def get_status(request: web.Request) -> web.Response:
    return web.json_response(_node(request).status())


async def get_health(request: web.Request) -> web.Response:
    node = _node(request)
    if node.halted:
        return error_response(503, "halted", node.halted)
    return web.json_response({"status": "ok", "height": node.head.height})


async def get_metrics(request: web.Request) -> web.Response:
    return web.Response(body=_node(request).metrics.render(), content_type="text/plain")


async def get_openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document())


async def events(request: web.Request) -> web.WebSocketResponse:
    """Websocket feed: one JSON message per committed block, then one per trade and per
    order change of that block (``type`` "trade" or "order"), then, if the block decided an
    interval, one ``type`` "schedule" message with its setpoints."""
    node = _node(request)
    ws = web.WebSocketResponse(heartbeat=30)
    await ws.prepare(request)
    queue = node.subscribe()

    async def forward() -> None:
        while True:
            event = await queue.get()
            await ws.send_json(
                {
                    "type": "block_committed",
                    "height": event.height,
                    "hash": event.block_hash.hex(),
                    "timestamp_ms": event.timestamp_ms,
                    "txs": [h.hex() for h in event.tx_hashes],
                    "market_events": len(event.market_events),
                }
            )
            for market_event in event.market_events:
                await ws.send_json(market_event_view(market_event, event.height))
            if event.decision is not None:
                (view,) = _decision_views(node, [event.decision])
                await ws.send_json(
                    {
                        "type": "schedule",
                        "height": event.height,
                        "interval": view["interval"],
                        "start_ms": view["start_ms"],
                        "end_ms": view["end_ms"],
                        "base_load_w": view["base_load_w"],
                        "load_w": view["load_w"],
                        "benefit": view["benefit"],
                        "entries": view["entries"],
                    }
                )

    sender = asyncio.create_task(forward())
    try:
        async for msg in ws:  # the client says nothing we need; read to notice it leaving
            if msg.type == WSMsgType.ERROR:
                break
    finally:
        sender.cancel()
        node.unsubscribe(queue)
    return ws


def build_app(node: Node) -> web.Application:
    app = web.Application(
        middlewares=[error_middleware],
        client_max_size=node.config.api.max_body_bytes,
    )
    app[NODE_KEY] = node
    app.router.add_get("/v1/status", get_status)
    app.router.add_post("/v1/txs", post_tx)
    app.router.add_get("/v1/txs/{hash}", get_tx)
    app.router.add_get("/v1/blocks/{height}", get_block)
    app.router.add_get("/v1/accounts/{address}", get_account_view)
    app.router.add_get("/v1/markets", get_markets)
    app.router.add_get("/v1/markets/{market}/slots/{slot}/book", get_book)
    app.router.add_get("/v1/orders", list_orders)
    app.router.add_get("/v1/orders/{id}", get_order_by_id)
    app.router.add_get("/v1/trades", list_trades)
    app.router.add_get("/v1/pool/prices", get_pool_prices)
    app.router.add_get("/v1/meters/{id}", get_meter_view)
    app.router.add_get("/v1/meters/{id}/readings", list_meter_readings)
    app.router.add_get("/v1/settlements", list_settlements)
    app.router.add_get("/v1/schedule", get_schedule)
    app.router.add_get("/v1/cd", list_cd_requests)
    app.router.add_get("/v1/cd/{id}", get_cd_request)
    app.router.add_get("/v1/events", events)
    app.router.add_get("/health", get_health)
    app.router.add_get("/metrics", get_metrics)
    app.router.add_get("/openapi.json", get_openapi)
    return app
