"""The gateway's client API: the node's routes and models, served at the public edge.

``POST /v1/txs`` runs every transaction through the admission filters
(gridchain.gateway.admission) and answers 202 once it is queued toward the validators; a
refusal is the filter's typed error (``Retry-After`` on a 429).  Every read of the contract's
route table is relayed to a validator (gridchain.gateway.relay), ``/v1/events`` is the relayed
feed, and ``/health``, ``/metrics`` and ``/openapi.json`` are the gateway's own.  The error
envelope is the node's (gridchain.node.api_reply.error_middleware), so a client cannot tell a
gateway from a validator by the shape of an answer, only by the refusals only a gateway gives.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import WSCloseCode, WSMsgType, web

from gridchain.api import models as m
from gridchain.api.routes import ROUTES
from gridchain.gateway.admission import Admission
from gridchain.gateway.errors import GatewayRefusalError
from gridchain.gateway.fair_queue import Queued
from gridchain.gateway.metrics import GatewayMetrics
from gridchain.gateway.openapi import gateway_openapi_document
from gridchain.gateway.relay import EventFeed, ReadRelay, RelayUnavailableError
from gridchain.gateway.verdicts import refusal_of
from gridchain.node import operator_page
from gridchain.node.api_input import parse_submission, read_body
from gridchain.node.api_reply import UnavailableError, error_middleware, error_response, reply
from gridchain.node.http_guard import ConnectionGuard
from gridchain.protocol.errors import GridchainError


@dataclass
class GatewayState:
    """What the handlers share: the filters, the relay, the feed and the counters."""

    admission: Admission
    relay: ReadRelay
    feed: EventFeed
    metrics: GatewayMetrics
    body_timeout_s: float
    forward_timeout_s: float
    ws_heartbeat_s: float
    #: The height of the last certified block the gateway followed (None before the first).
    head_height: Callable[[], int | None]


STATE_KEY = web.AppKey("gateway", GatewayState)
GUARD_KEY = web.AppKey("guard", ConnectionGuard)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _state(request: web.Request) -> GatewayState:
    return request.app[STATE_KEY]


@web.middleware
async def refusal_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A gateway refusal as the usual error object, with Retry-After on a 429."""
    try:
        return await handler(request)
    except GatewayRefusalError as exc:
        response = error_response(exc.http_status, exc.code, exc.message)
        if exc.retry_after_s is not None:
            response.headers["Retry-After"] = str(max(1, round(exc.retry_after_s + 0.5)))
        return response


async def _read_submission(request: web.Request, state: GatewayState) -> tuple[list[bytes], bool]:
    """The raw transactions of a POST /v1/txs and whether it was the batch form (the same
    shapes a validator accepts, parsed by the same strict input layer)."""
    try:
        body = await read_body(request, state.body_timeout_s)
        return parse_submission(body, request.content_type)
    except web.HTTPRequestEntityTooLarge:
        state.metrics.refused.labels(filter="size", code="oversize").inc()
        raise
    except GridchainError as exc:
        state.metrics.refused.labels(filter="request", code=exc.code).inc()
        raise


async def _verdict(item: Queued, timeout_s: float) -> tuple[int, m.TxAccepted | m.Error]:
    """Wait for the validators' answer to a queued transaction (the client waits for its turn
    in the fair queue and one round trip over the links, no longer than ``timeout_s``)."""
    try:
        async with asyncio.timeout(timeout_s):
            await asyncio.shield(item.verdict)
    except TimeoutError:
        # the forwarder settles it later; nobody waits then, so its outcome is consumed here
        item.verdict.add_done_callback(_consume)
        return 503, _error("forward_timeout", "the validators did not answer in time; retry")
    except GridchainError as exc:
        status, code, message = refusal_of(exc)
        return status, _error(code, message)
    except Exception:  # noqa: BLE001 - a failure of the link itself: the client may retry
        return 503, _error("forward_failed", "no validator could take the transaction; retry")
    return 202, m.TxAccepted(hash=item.tx_hash.hex(), status="pending")


def _consume(verdict: asyncio.Future[None]) -> None:
    if not verdict.cancelled():
        verdict.exception()


def _error(code: str, message: str) -> m.Error:
    return m.Error(error=m.ErrorBody(code=code, message=message))


async def post_tx(request: web.Request) -> web.Response:
    """Submit one transaction (202) or a batch (200): each passes the filters, waits its turn
    in the fair queue and is answered with the validators' verdict, so a client sees the same
    refusals as from a validator (plus the gateway's own, ``x-gateway-refusals``)."""
    state = _state(request)
    raws, batch = await _read_submission(request, state)
    admit = state.admission.admit
    if not batch:
        status, answer = await _verdict(admit(raws[0]), state.forward_timeout_s)
        return reply(answer, status)
    pending: list[Queued | m.Error] = []
    for raw in raws:
        try:
            pending.append(admit(raw))
        except GridchainError as exc:
            pending.append(_error(exc.code, exc.message))
    results: list[m.TxAccepted | m.Error] = []
    for entry in pending:
        if isinstance(entry, m.Error):
            results.append(entry)
        else:
            results.append((await _verdict(entry, state.forward_timeout_s))[1])
    return reply(m.BatchResults(results=results))


async def relay_read(request: web.Request) -> web.Response:
    """A read of the contract, answered by a validator (path and query unchanged; a POST
    read's body, bounded like any request's, passed as it came)."""
    state = _state(request)
    body = None
    if request.method != "GET":
        body = await read_body(request, state.body_timeout_s)
    try:
        status, content_type, body = await state.relay.request(
            request.method, request.rel_url.raw_path_qs, body, request.content_type
        )
    except RelayUnavailableError:
        raise UnavailableError("no validator answered; retry") from None
    state.metrics.relayed.inc()
    return web.Response(status=status, body=body, content_type=content_type)


async def get_health(request: web.Request) -> web.Response:
    height = _state(request).head_height()
    if height is None:
        return error_response(503, "gateway_not_ready", "not yet following the chain")
    return reply(m.Health(status="ok", height=height))


async def get_metrics(request: web.Request) -> web.Response:
    return web.Response(body=_state(request).metrics.render(), content_type="text/plain")


async def get_openapi(request: web.Request) -> web.Response:
    return web.json_response(gateway_openapi_document())


async def events(request: web.Request) -> web.WebSocketResponse:
    """The validators' feed, relayed; a subscriber too far behind is closed with 1008."""
    state = _state(request)
    ws = web.WebSocketResponse(heartbeat=state.ws_heartbeat_s)
    await ws.prepare(request)
    sub = state.feed.subscribe()

    async def forward() -> None:
        while True:
            await ws.send_str(await sub.queue.get())

    async def until_client_leaves() -> None:
        async for msg in ws:
            if msg.type == WSMsgType.ERROR:
                return

    tasks = {
        asyncio.create_task(forward()),
        asyncio.create_task(until_client_leaves()),
        asyncio.create_task(sub.overflowed.wait()),
    }
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        state.feed.unsubscribe(sub)
    if sub.overflowed.is_set() and not ws.closed:
        await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"slow consumer")
    return ws


def build_gateway_app(
    state: GatewayState, guard: ConnectionGuard, *, max_body_bytes: int
) -> web.Application:
    """Every route of the contract: the gateway's own handlers, the rest relayed."""
    own: dict[str, Handler] = {
        "post_tx": post_tx,
        "events": events,
        "get_health": get_health,
        "get_metrics": get_metrics,
        "get_openapi": get_openapi,
        **operator_page.HANDLERS,  # the operator page: the same files as a validator's
    }
    app = web.Application(
        middlewares=[guard.middleware, error_middleware, refusal_middleware],
        client_max_size=max_body_bytes,
    )
    app[STATE_KEY] = state
    app[GUARD_KEY] = guard
    for route in ROUTES:
        # every write is POST /v1/txs (filtered); any other POST of the contract is a read
        app.router.add_route(
            route.method, route.path, own.get(route.name, relay_read), name=route.name
        )
    operator_page.install(app)  # the page's reads are the relayed routes
    return app
