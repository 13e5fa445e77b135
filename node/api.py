"""The node's HTTP API (DESIGN section 10), JSON under /v1.

Every refusal is a 4xx with ``{"error": {"code", "message"}}``: the error middleware maps the
project's typed errors by their ``code`` and ``http_status``, aiohttp's own (unknown route,
wrong method, body too large) to the same shape, and anything unexpected to a 500 with no
stack trace (the trace goes to the log).  Handlers only read, or hand a decoded transaction to
the runtime, so a refused request writes nothing.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Mapping
from typing import TypeVar

import structlog
from aiohttp import WSCloseCode, WSMsgType, web

from gridchain.api import models as m
from gridchain.api.openapi import openapi_document
from gridchain.api.routes import (
    BLOCKS_DEFAULT,
    BLOCKS_MAX,
    DEFAULT_LIST,
    MAX_LIST,
    POOL_MAX_COUNT,
    PRIVATE_ROUTES,
    ROUTES,
    ROUTES_BY_NAME,
    SCHEDULE_DEFAULT,
    SCHEDULE_MAX,
    STATS_LOAD_DEFAULT,
    STATS_SLOTS_DEFAULT,
    STATS_SLOTS_MAX,
)
from gridchain.market.cd_requests import CDStatus
from gridchain.market.governance import ProposalStatus
from gridchain.market.orders import OrderStatus
from gridchain.node import operator_page
from gridchain.node.api_input import (
    RequestError,
    parse_device_id,
    parse_hash,
    parse_height,
    parse_hex,
    parse_json,
    parse_market,
    parse_meter_id,
    parse_submission,
    parse_uint,
    read_body,
)
from gridchain.node.api_reply import (
    GatewaysOnlyError,
    Handler,
    NotFoundError,
    SealedReadsOnlyError,
    UnavailableError,
    error_middleware,
    error_response,
    reply,
)
from gridchain.node.http_guard import ConnectionGuard, connection_budget
from gridchain.node.query import NodeQuery
from gridchain.node.runtime import Node, Subscription
from gridchain.node.sealed_reads import SealedReads
from gridchain.protocol.address import parse_address
from gridchain.protocol.errors import DecodeError, GridchainError
from gridchain.protocol.tx import decode_tx

NODE_KEY = web.AppKey("node", Node)
QUERY_KEY = web.AppKey("query", NodeQuery)
SEALED_READS_KEY = web.AppKey("sealed_reads", SealedReads)
GUARD_KEY = web.AppKey("guard", ConnectionGuard)
log = structlog.get_logger("gridchain.api")
#: How long a slow websocket subscriber's close may take before its connection is cut.
WS_CLOSE_GRACE_S = 10.0


S = TypeVar("S")


def _node(request: web.Request) -> Node:
    return request.app[NODE_KEY]


def _query(request: web.Request) -> NodeQuery:
    return request.app[QUERY_KEY]


async def _read_txs(request: web.Request) -> tuple[list[bytes], bool]:
    """The raw transactions of a submission and whether it was the batch form."""
    body = await read_body(request, _node(request).config.api.body_timeout_s)
    return parse_submission(body, request.content_type)


def _admit(node: Node, raw: bytes) -> str:
    try:
        tx = decode_tx(raw)
    except DecodeError as exc:
        node.metrics.txs_rejected.labels(code=exc.code).inc()
        raise
    return node.submit(tx, raw).hex()


# --- parameters: read only what the route table declares ------------------------------------


def _param(request: web.Request, name: str) -> str | None:
    """A query parameter the request's route declares (asking for another is a bug here)."""
    route = ROUTES_BY_NAME[request.match_info.route.name or ""]
    if name not in route.query_names:
        raise AssertionError(f"{route.path} reads ?{name}, which its route does not declare")
    return request.query.get(name)


def _query_opt(request: web.Request, name: str, *, lo: int = 0, hi: int = 2**64 - 1) -> int | None:
    text = _param(request, name)
    return None if text is None else parse_uint(text, name, lo=lo, hi=hi)


def _query_int(
    request: web.Request, name: str, default: int, *, lo: int = 0, hi: int = 2**64 - 1
) -> int:
    value = _query_opt(request, name, lo=lo, hi=hi)
    return default if value is None else value


def _query_address(request: web.Request, name: str) -> bytes | None:
    text = _param(request, name)
    return None if text is None else parse_address(text)


def _limit(request: web.Request, default: int = DEFAULT_LIST, most: int = MAX_LIST) -> int:
    return _query_int(request, "limit", default, lo=1, hi=most)


def _status_of(request: web.Request, statuses: Mapping[str, S]) -> S | None:
    """``?status=`` among the given names."""
    text = _param(request, "status")
    if text is None:
        return None
    if text not in statuses:
        raise RequestError(f"status is one of {', '.join(statuses)}, got {text!r}")
    return statuses[text]


# --- chain -------------------------------------------------------------------------------


async def get_status(request: web.Request) -> web.Response:
    return reply(_query(request).status())


async def post_tx(request: web.Request) -> web.Response:
    """Submit one transaction, or a batch: each item of a batch is admitted or refused alone
    (in order, so one sender's nonces may follow each other within a batch)."""
    node = _node(request)
    if node.config.api.client_txs == "gateways":
        raise GatewaysOnlyError("this validator takes client transactions only through a gateway")
    if node.halted:
        raise UnavailableError(f"node halted: {node.halted}")
    raws, batch = await _read_txs(request)
    if not batch:
        try:
            return reply(m.TxAccepted(hash=_admit(node, raws[0]), status="pending"), 202)
        finally:
            node.flush_gossip()
    results: list[m.TxAccepted | m.Error] = []
    for raw in raws:
        try:
            results.append(m.TxAccepted(hash=_admit(node, raw), status="pending"))
        except GridchainError as exc:
            results.append(m.Error(error=m.ErrorBody(code=exc.code, message=exc.message)))
    # The batch travels as one gossip frame, queued before the client hears it was admitted
    # (a client may send the sender's next nonce to another validator at once).
    node.flush_gossip()
    return reply(m.BatchResults(results=results))


async def get_tx(request: web.Request) -> web.Response:
    tx_hash = parse_hash(request.match_info["hash"])
    found = _query(request).tx(tx_hash)
    if found is None:
        raise NotFoundError(f"no transaction {tx_hash.hex()}")
    return reply(found)


async def get_block(request: web.Request) -> web.Response:
    query = _query(request)
    named = parse_height(request.match_info["height"])
    height = query.head_height if named is None else named
    if height == 0:
        raise NotFoundError("height 0 is the genesis state, not a block")
    found = query.block(height)
    if found is None:
        if height < (base := query.history_from):
            raise NotFoundError(
                f"no block at height {height}: this node started from a state snapshot at "
                f"height {base} and stores no block before it (ADR 0039)"
            )
        raise NotFoundError(f"no block at height {height} (head is {query.head_height})")
    return reply(found)


async def get_block_by_hash(request: web.Request) -> web.Response:
    block_hash = parse_hash(request.match_info["hash"])
    found = _query(request).block_by_hash(block_hash)
    if found is None:
        raise NotFoundError(f"no committed block {block_hash.hex()}")
    return reply(found)


async def list_blocks(request: web.Request) -> web.Response:
    """Committed blocks from ``from`` (default 1) in height order, ``limit`` at most."""
    first = _query_int(request, "from", 1, lo=1)
    return reply(_query(request).blocks(first, _limit(request, BLOCKS_DEFAULT, BLOCKS_MAX)))


# --- accounts, participants, validators --------------------------------------------------


async def get_account(request: web.Request) -> web.Response:
    address = parse_address(request.match_info["address"])
    return reply(_query(request).account(address))


async def list_participants(request: web.Request) -> web.Response:
    return reply(_query(request).participants(_limit(request)))


async def list_proposals(request: web.Request) -> web.Response:
    status = _status_of(request, {s.label: s for s in ProposalStatus})
    return reply(_query(request).proposals(_limit(request), status))


async def get_proposal(request: web.Request) -> web.Response:
    proposal_id = parse_hash(request.match_info["id"])
    found = _query(request).proposal(proposal_id)
    if found is None:
        raise NotFoundError(f"no proposal {proposal_id.hex()} (its id is the Propose tx's hash)")
    return reply(found)


async def get_params(request: web.Request) -> web.Response:
    return reply(_query(request).chain_parameters())


async def list_validators(request: web.Request) -> web.Response:
    return reply(_query(request).validators())


# --- markets -----------------------------------------------------------------------------


async def get_markets(request: web.Request) -> web.Response:
    """The market rules of this chain and the slots open for trading now."""
    return reply(_query(request).markets())


async def get_book(request: web.Request) -> web.Response:
    """One book's price levels, best first, with displayed quantities only."""
    market = parse_market(request.match_info["market"])
    slot = parse_uint(request.match_info["slot"], "slot")
    return reply(_query(request).book(market, slot))


async def list_offers(request: web.Request) -> web.Response:
    """One book's individual resting orders in matching order: what a taker meets first."""
    market = parse_market(request.match_info["market"])
    slot = parse_uint(request.match_info["slot"], "slot")
    return reply(_query(request).offers(market, slot, _limit(request)))


async def get_slot_stats(request: web.Request) -> web.Response:
    """Per-slot public aggregates (the operator page's market and settlement tables)."""
    query = _query(request)
    count = _query_int(request, "count", STATS_SLOTS_DEFAULT, lo=1, hi=STATS_SLOTS_MAX)
    first = _query_opt(request, "from")
    start = max(0, query.current_slot() - 6) if first is None else first
    return reply(query.slot_stats(start, min(count, 2**64 - start)))


async def get_load_stats(request: web.Request) -> web.Response:
    """The community load against the committed schedule, with its PFL."""
    return reply(_query(request).load_stats(_limit(request, STATS_LOAD_DEFAULT, SCHEDULE_MAX)))


async def get_order(request: web.Request) -> web.Response:
    order_id = parse_hash(request.match_info["id"])
    found = _query(request).order(order_id)
    if found is None:
        raise NotFoundError(f"no order {order_id.hex()} (an order's id is its transaction hash)")
    return reply(found)


async def list_orders(request: web.Request) -> web.Response:
    """An address's orders (by slot, then id), optionally of one slot and status."""
    address = _query_address(request, "address")
    if address is None:
        raise RequestError("GET /v1/orders needs ?address=gc1...")
    slot = _query_opt(request, "slot")
    status = _status_of(request, {s.label: s for s in OrderStatus})
    return reply(_query(request).orders(address, slot, status, _limit(request)))


async def list_trades(request: web.Request) -> web.Response:
    """Trades (contracts) by slot and trade id, filtered by address, slot and market."""
    address = _query_address(request, "address")
    slot = _query_opt(request, "slot")
    market_text = _param(request, "market")
    market = None if market_text is None else parse_market(market_text)
    return reply(_query(request).trades(address, slot, market, _limit(request)))


async def get_pool_prices(request: web.Request) -> web.Response:
    """The real-time pool's tariffs and SDR price curve per interval (and a quote)."""
    query = _query(request)
    first = _query_opt(request, "slot")
    count = _query_int(request, "count", 4, lo=1, hi=POOL_MAX_COUNT)
    supply = _query_opt(request, "supply_wh", hi=2**62)
    demand = _query_opt(request, "demand_wh", hi=2**62)
    if (supply is None) != (demand is None):
        raise RequestError("a quote needs both supply_wh and demand_wh")
    quote = None if supply is None or demand is None else (supply, demand)
    start = query.current_slot() if first is None else first
    return reply(query.pool_prices(start, count, quote))


# --- meters and settlement ---------------------------------------------------------------


def _meter_id(request: web.Request) -> str:
    return parse_meter_id(request.match_info["id"])


async def list_meters(request: web.Request) -> web.Response:
    """Registered meters by id (of one owner, by id, with ``?owner=``)."""
    owner = _query_address(request, "owner")
    return reply(_query(request).meters(owner, _limit(request)))


async def get_meter(request: web.Request) -> web.Response:
    """A meter and the head of its reading chain (a bridge resumes from it)."""
    meter_id = _meter_id(request)
    found = _query(request).meter(meter_id)
    if found is None:
        raise NotFoundError(f"no meter {meter_id!r}")
    return reply(found)


async def get_device(request: web.Request) -> web.Response:
    """The meter a device is linked to on chain (a bridge's charger finds its meter here)."""
    device_id = parse_device_id(request.match_info["id"])
    found = _query(request).device_link(device_id)
    if found is None:
        raise NotFoundError(f"no meter is linked to device {device_id!r}")
    return reply(found)


async def list_meter_readings(request: web.Request) -> web.Response:
    """A meter's accepted readings in sequence order, from ``from_seq`` (default 0)."""
    query = _query(request)
    meter_id = _meter_id(request)
    if query.meter(meter_id) is None:
        raise NotFoundError(f"no meter {meter_id!r}")
    from_seq = _query_int(request, "from_seq", 0)
    return reply(query.readings(meter_id, from_seq, _limit(request)))


async def list_settlements(request: web.Request) -> web.Response:
    """Settlement receipts by slot and trade id, of one address (buyer or seller) and slot."""
    address = _query_address(request, "address")
    slot = _query_opt(request, "slot")
    return reply(_query(request).receipts(address, slot, _limit(request)))


async def list_pool_slots(request: web.Request) -> web.Response:
    """Settled slots' real-time pools, oldest first from ``from_slot``."""
    from_slot = _query_int(request, "from_slot", 0)
    return reply(_query(request).pool_slots(from_slot, _limit(request)))


async def list_pool_receipts(request: web.Request) -> web.Response:
    """Households' pool receipts by slot, of one address and slot."""
    address = _query_address(request, "address")
    slot = _query_opt(request, "slot")
    return reply(_query(request).pool_receipts(address, slot, _limit(request)))


# --- C&D requests and the schedule -------------------------------------------------------


async def get_schedule(request: web.Request) -> web.Response:
    """The committed setpoints: the latest decisions (newest first), or one interval's."""
    query = _query(request)
    interval = _query_opt(request, "interval")
    limit = _limit(request, SCHEDULE_DEFAULT, SCHEDULE_MAX)
    if interval is not None and _param(request, "limit") is not None:
        raise RequestError("give ?interval=N or ?limit=N, not both")
    found = query.schedule(interval, limit)
    if found is None:
        raise NotFoundError(
            f"no decision kept for interval {interval} (next to decide: "
            f"{query.next_interval()}); an interval without vehicles or without a block is "
            "never decided, and old decisions are only in their blocks"
        )
    return reply(found)


async def get_cd_request(request: web.Request) -> web.Response:
    request_id = parse_hash(request.match_info["id"])
    found = _query(request).cd_request(request_id)
    if found is None:
        raise NotFoundError(
            f"no C&D request {request_id.hex()} (its id is the hash of its CDRequest "
            "transaction; a pending or refused one has no record)"
        )
    return reply(found)


async def get_cd_receipts(request: web.Request) -> web.Response:
    request_id = parse_hash(request.match_info["id"])
    found = _query(request).cd_receipts(request_id)
    if found is None:
        raise NotFoundError(f"no C&D request {request_id.hex()}")
    return reply(found)


async def list_cd_requests(request: web.Request) -> web.Response:
    """C&D requests, newest first (by submission height, then id), of one owner and status."""
    owner = _query_address(request, "owner")
    status = _status_of(request, {s.label: s for s in CDStatus})
    return reply(_query(request).cd_requests(owner, status, _limit(request)))


# --- operations --------------------------------------------------------------------------


def _sealed_only(handler: Handler) -> Handler:
    async def refuse(request: web.Request) -> web.StreamResponse:
        raise SealedReadsOnlyError(
            f"{request.path} is private data on this node: read it with POST /v1/sealed-reads"
        )

    refuse.__doc__ = handler.__doc__
    return refuse


async def post_sealed_read(request: web.Request) -> web.Response:
    """A signed read of an account's private data, answered sealed (node/sealed_reads.py)."""
    body = await read_body(request, _node(request).config.api.body_timeout_s)
    doc = parse_json(body)
    if not isinstance(doc, dict) or set(doc) != {"request"}:
        raise RequestError('expected {"request": "<hex of the encoded SignedRead>"}')
    return reply(request.app[SEALED_READS_KEY].answer(parse_hex(doc["request"], '"request"')))


async def get_health(request: web.Request) -> web.Response:
    query = _query(request)
    if query.halted:
        return error_response(503, "halted", query.halted)
    return reply(m.Health(status="ok", height=query.head_height))


async def get_metrics(request: web.Request) -> web.Response:
    return web.Response(body=_node(request).metrics.render(), content_type="text/plain")


async def get_openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document())


async def events(request: web.Request) -> web.WebSocketResponse:
    """Websocket feed: one JSON message per committed block, then one per trade and per
    order change of that block (``type`` "trade" or "order"), then, if the block decided an
    interval, one ``type`` "schedule" message with its setpoints (models.Event).

    A subscriber that reads too slowly (``api.ws_queue_events`` blocks behind, or
    ``api.ws_send_buffer_bytes`` waiting to be sent) is closed with 1008 and a reason, so it
    knows to resynchronise from /v1/blocks instead of silently missing blocks."""
    node = _node(request)
    settings = node.config.api
    ws = web.WebSocketResponse(heartbeat=settings.ws_heartbeat_s)
    await ws.prepare(request)
    _bound_send_buffer(request, settings.ws_send_buffer_bytes)
    subscription = node.subscribe(settings.ws_queue_events)
    sender = asyncio.create_task(
        _forward(ws, request, _query(request), subscription, settings.ws_send_buffer_bytes)
    )
    listener = asyncio.create_task(_until_client_leaves(ws))
    overflow = asyncio.create_task(subscription.overflowed.wait())
    tasks = {sender, listener, overflow}
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        node.unsubscribe(subscription)
    if overflow in done:
        reason = f"slow consumer: more than {settings.ws_queue_events} blocks behind"
    elif sender in done and not sender.cancelled() and sender.exception() is None:
        reason = sender.result()
    else:
        return ws  # the client left (or the connection failed)
    node.metrics.ws_closed.labels(reason="slow_consumer").inc()
    await _close_slow(ws, request, reason)
    return ws


def _bound_send_buffer(request: web.Request, limit: int) -> None:
    """Cap what the kernel and the transport hold for one subscriber near ``limit``, so that
    a reader that stops reading is noticed after that many bytes, not after megabytes."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, limit)
    transport.set_write_buffer_limits(high=limit)


async def _forward(
    ws: web.WebSocketResponse,
    request: web.Request,
    query: NodeQuery,
    subscription: Subscription,
    buffer_limit: int,
) -> str:
    """Send the feed; return why the subscriber is too slow to keep (never returns else)."""
    transport = request.transport
    while True:
        event = await subscription.queue.get()
        for message in query.event_messages(event):
            await ws.send_str(message.model_dump_json())
        if transport is not None and transport.get_write_buffer_size() > buffer_limit:
            return f"slow consumer: more than {buffer_limit} bytes unread"


async def _until_client_leaves(ws: web.WebSocketResponse) -> None:
    """Read until the client closes; it says nothing we need, but reading notices it leave
    and answers the heartbeat's pongs."""
    async for msg in ws:
        if msg.type == WSMsgType.ERROR:
            return


async def _close_slow(ws: web.WebSocketResponse, request: web.Request, reason: str) -> None:
    """Close with 1008 and ``reason``; the close frame waits behind what the slow reader has
    not read yet, so a reader that never reads is cut after WS_CLOSE_GRACE_S."""
    try:
        async with asyncio.timeout(WS_CLOSE_GRACE_S):
            await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=reason.encode()[:120])
    except (TimeoutError, ConnectionError):
        pass
    finally:
        transport = request.transport
        if transport is not None and not transport.is_closing():
            transport.close()
            asyncio.get_running_loop().call_later(WS_CLOSE_GRACE_S, transport.abort)


#: The handler of each route of gridchain.api.routes.ROUTES, by the route's name.
HANDLERS: dict[str, Handler] = {
    "get_status": get_status,
    "post_tx": post_tx,
    "get_tx": get_tx,
    "list_blocks": list_blocks,
    "get_block_by_hash": get_block_by_hash,
    "get_block": get_block,
    "get_account": get_account,
    "list_participants": list_participants,
    "get_params": get_params,
    "list_validators": list_validators,
    "list_proposals": list_proposals,
    "get_proposal": get_proposal,
    "get_markets": get_markets,
    "get_book": get_book,
    "list_offers": list_offers,
    "list_orders": list_orders,
    "get_order": get_order,
    "list_trades": list_trades,
    "get_pool_prices": get_pool_prices,
    "list_meters": list_meters,
    "get_meter": get_meter,
    "get_device": get_device,
    "list_meter_readings": list_meter_readings,
    "list_settlements": list_settlements,
    "list_pool_slots": list_pool_slots,
    "list_pool_receipts": list_pool_receipts,
    "get_schedule": get_schedule,
    "list_cd_requests": list_cd_requests,
    "get_cd_request": get_cd_request,
    "get_cd_receipts": get_cd_receipts,
    "get_slot_stats": get_slot_stats,
    "get_load_stats": get_load_stats,
    "events": events,
    "post_sealed_read": post_sealed_read,
    "get_health": get_health,
    "get_metrics": get_metrics,
    "get_openapi": get_openapi,
    **operator_page.HANDLERS,
}


def build_app(node: Node) -> web.Application:
    """The API of ``node``: exactly the routes of the contract's table, each with its handler."""
    missing = {r.name for r in ROUTES} ^ set(HANDLERS)
    if missing:
        raise RuntimeError(f"routes and handlers differ: {sorted(missing)}")
    settings = node.config.api
    metrics = node.metrics
    guard = ConnectionGuard(
        max_connections=connection_budget(settings.max_connections),
        header_timeout_s=settings.header_timeout_s,
        on_refused=lambda reason: metrics.http_refused.labels(reason=reason).inc(),
    )
    metrics.http_connections.set_function(lambda: guard.open)

    @web.middleware
    async def rest_after(request: web.Request, handler: Handler) -> web.StreamResponse:
        """Every request may read the ledger: trim once requests pause (ADR 0054)."""
        try:
            return await handler(request)
        finally:
            node.note_reads()

    app = web.Application(
        middlewares=[guard.middleware, rest_after, error_middleware],
        client_max_size=settings.max_body_bytes,
    )
    app[GUARD_KEY] = guard
    app[NODE_KEY] = node
    app[QUERY_KEY] = NodeQuery(node)
    app[SEALED_READS_KEY] = SealedReads(app[QUERY_KEY], node.chain_id, node.clock)
    for route in ROUTES:
        handler = HANDLERS[route.name]
        if settings.sealed_reads_only and route.name in PRIVATE_ROUTES:
            handler = _sealed_only(handler)
        if route.method == "GET":
            app.router.add_get(route.path, handler, name=route.name)
        else:
            app.router.add_route(route.method, route.path, handler, name=route.name)
    operator_page.install(app)
    return app
