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

import structlog
from aiohttp import WSMsgType, web

from market.accounts import get_account, get_participant
from node.openapi import openapi_document
from node.runtime import Node
from node.views import committed_view, tx_view
from protocol.address import format_address, parse_address
from protocol.errors import DecodeError, GridchainError
from protocol.tx import MAX_TX_BYTES, decode_tx

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


async def _read_tx_bytes(request: web.Request) -> bytes:
    body = await request.read()
    if request.content_type in ("application/msgpack", "application/octet-stream"):
        return body
    try:
        doc = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise MalformedJsonError("request body is not valid JSON") from None
    if not isinstance(doc, dict) or set(doc) != {"tx"}:
        raise RequestError('expected a JSON object {"tx": "<hex of the encoded transaction>"}')
    if not isinstance(doc["tx"], str):
        raise RequestError('"tx" must be a hex string')
    try:
        return bytes.fromhex(doc["tx"])
    except ValueError:
        raise RequestError('"tx" is not valid hex') from None


async def post_tx(request: web.Request) -> web.Response:
    node = _node(request)
    if node.halted:
        raise UnavailableError(f"node halted: {node.halted}")
    raw = await _read_tx_bytes(request)
    try:
        tx = decode_tx(raw)
    except DecodeError as exc:
        node.metrics.txs_rejected.labels(code=exc.code).inc()
        raise
    tx_hash = node.submit(tx, raw)
    return web.json_response({"hash": tx_hash.hex(), "status": "pending"}, status=202)


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
    """Websocket feed: one JSON message per committed block."""
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
        client_max_size=min(node.config.api.max_body_bytes, 2 * MAX_TX_BYTES + 1024),
    )
    app[NODE_KEY] = node
    app.router.add_get("/v1/status", get_status)
    app.router.add_post("/v1/txs", post_tx)
    app.router.add_get("/v1/txs/{hash}", get_tx)
    app.router.add_get("/v1/blocks/{height}", get_block)
    app.router.add_get("/v1/accounts/{address}", get_account_view)
    app.router.add_get("/v1/events", events)
    app.router.add_get("/health", get_health)
    app.router.add_get("/metrics", get_metrics)
    app.router.add_get("/openapi.json", get_openapi)
    return app
