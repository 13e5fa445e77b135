"""The agent's HTTP API (aiohttp): seed 000 table 2.5's five calls, the plan, manual orders.

========================================  ==================================================
``GET /agent/health``                     the agent's state: node reachable, last cycle, plan
``GET /fetchHistoricalData``              the history it forecasts from (``from_ms``, ``to_ms``)
``GET /fetchForecastData``                PV and load forecast, regression vs persistence
``GET /fetchOptimizationsData``           the plan (``version=N``: an earlier one), its sign
                                          conventions, cost, base-case cost and violations
``GET /fetchTransactionData``             the agent's actions, and the account's orders and
                                          trades on chain
``GET /v1/plans``                         the plan versions kept
``POST /v1/orders``                       a manual order, within the user's limits
``GET /v1/household``                     the account on chain: balance, open orders, trades,
                                          receipts with their tariffs, earnings, C&D requests
``GET /v1/offers?market=&slot=``          a book's individual offers, and which are the
                                          household's own
``POST /v1/take``                         take one offer at its price, within the limits
``POST /v1/charge``                       a C&D request for the EV or battery
``GET /``                                 the household page (ADR 0042) and its files
========================================  ==================================================

Every error is ``{"error": {"code", "message"}}`` with the typed error's status: a malformed
body or query is 400 ``bad_request``, an order beyond a user limit 422 ``over_user_limit``, an
order for a closed slot 409 ``slot_closed`` (an offer gone, one's own or not the first met, a
C&D request without a meter or past its deadline: 409 too); a refused request signs, sends and
logs nothing.  A node that does not answer is 502 ``node_unreachable``: the agent is fine.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from gridchain.agent import household as hh
from gridchain.agent import page
from gridchain.agent.errors import AgentInputError, PlanNotFoundError
from gridchain.agent.models import (
    Action,
    ChargeRequest,
    ErrorBody,
    ErrorResponse,
    Health,
    OrderRequest,
    PlanVersions,
    TakeRequest,
    TransactionData,
)
from gridchain.agent.runner import Agent
from gridchain.api.client import NodeError, NodeUnreachableError
from gridchain.protocol.errors import GridchainError

AGENT_KEY: web.AppKey[Agent] = web.AppKey("agent", Agent)
#: A manual order is a few hundred bytes.
MAX_BODY_BYTES = 4096

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
BodyT = TypeVar("BodyT", bound=BaseModel)


def _json(model: BaseModel, status: int = 200) -> web.Response:
    return web.Response(
        text=model.model_dump_json(), status=status, content_type="application/json"
    )


def _error(status: int, code: str, message: str) -> web.Response:
    return _json(ErrorResponse(error=ErrorBody(code=code, message=message)), status)


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Typed errors become the error envelope; aiohttp's own 404/405 too."""
    try:
        return await handler(request)
    except GridchainError as exc:
        status = exc.http_status
        if isinstance(exc, NodeError):
            status = 502  # the agent is fine; the node it needs did not do it
            if isinstance(exc, NodeUnreachableError):
                request.app[AGENT_KEY].node_reachable = False
        return _error(status, exc.code, exc.message)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status, "bad_request")
        return _error(exc.status, code, exc.reason)


def _int_query(request: web.Request, name: str) -> int | None:
    text = request.query.get(name)
    if text is None:
        return None
    if not text.isdigit() or len(text) > 19:
        raise AgentInputError(f"{name} must be a non-negative integer, got {text!r}")
    return int(text)


async def health(request: web.Request) -> web.Response:
    agent = request.app[AGENT_KEY]
    history = agent.history
    plan_version = max(agent.plans, default=None)
    if agent.last_cycle_ms is None and agent.last_error is None:
        status = "starting"
    else:
        status = "ok" if agent.last_error is None else "degraded"
    return _json(
        Health(
            status=status,
            name=agent.config.name,
            address=agent.address,
            node_url=agent.config.node_url,
            node_reachable=agent.node_reachable,
            bridge_url=None if agent.config.bridge is None else agent.config.bridge.url,
            last_cycle_ms=agent.last_cycle_ms,
            last_error=agent.last_error,
            plan_version=plan_version,
            history_days=0 if history is None else len(history.pv.values),
            history_filled_intervals=0 if history is None else history.pv.filled,
            actions=len(agent.actions),
        )
    )


async def historical(request: web.Request) -> web.Response:
    agent = request.app[AGENT_KEY]
    from_ms = _int_query(request, "from_ms") or 0
    to_ms = _int_query(request, "to_ms")
    return _json(agent.historical(from_ms, to_ms))


async def forecast(request: web.Request) -> web.Response:
    agent = request.app[AGENT_KEY]
    if agent.forecast is None:
        raise PlanNotFoundError("no forecast yet: the agent's first cycle has not finished")
    return _json(agent.forecast)


async def optimisation(request: web.Request) -> web.Response:
    agent = request.app[AGENT_KEY]
    version = _int_query(request, "version")
    if version is None:
        version = max(agent.plans, default=None)
        if version is None:
            raise PlanNotFoundError("no plan yet: the agent's first cycle has not finished")
    plan = agent.plans.get(version)
    if plan is None:
        raise PlanNotFoundError(f"no plan version {version}; kept: {sorted(agent.plans)}")
    return _json(plan)


async def plan_versions(request: web.Request) -> web.Response:
    return _json(PlanVersions(versions=sorted(request.app[AGENT_KEY].plans)))


async def transactions(request: web.Request) -> web.Response:
    agent = request.app[AGENT_KEY]
    orders: list[dict[str, object]] | None
    trades: list[dict[str, object]] | None
    try:
        orders = [o.model_dump(mode="json") for o in await agent.node.orders(agent.address)]
        trades = [t.model_dump(mode="json") for t in await agent.node.trades(address=agent.address)]
    except NodeError:
        orders = trades = None
    return _json(TransactionData(actions=list(agent.actions), orders=orders, trades=trades))


async def _body(request: web.Request, model: type[BodyT]) -> BodyT:
    """The request's JSON body as ``model``, parsed strictly (400 on anything else)."""
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise AgentInputError(f"the body is larger than {MAX_BODY_BYTES} bytes")
    raw = await request.content.read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        raise AgentInputError(f"the body is larger than {MAX_BODY_BYTES} bytes")
    try:
        doc: Any = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise AgentInputError("the body is not JSON") from None
    try:
        return model.model_validate(doc, strict=True)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise AgentInputError(f"{where}: {first['msg']}") from None


def _sent(action: Action) -> web.Response:
    return _json(action, 201 if action.status == "committed" else 502)


async def place_order(request: web.Request) -> web.Response:
    agent = request.app[AGENT_KEY]
    order = await _body(request, OrderRequest)
    return _sent(await agent.place(order, origin="user", plan_version=None))


async def household(request: web.Request) -> web.Response:
    return _json(await hh.household(request.app[AGENT_KEY]))


async def offers(request: web.Request) -> web.Response:
    market = request.query.get("market")
    if market not in ("day_ahead", "intraday"):
        raise AgentInputError(f"market must be day_ahead or intraday, got {market!r}")
    slot = _int_query(request, "slot")
    if slot is None:
        raise AgentInputError("slot is required")
    return _json(await hh.book_offers(request.app[AGENT_KEY], market, slot))


async def take_offer(request: web.Request) -> web.Response:
    take = await _body(request, TakeRequest)
    return _sent(await hh.take(request.app[AGENT_KEY], take))


async def request_charge(request: web.Request) -> web.Response:
    charge = await _body(request, ChargeRequest)
    return _sent(await hh.request_charge(request.app[AGENT_KEY], charge))


def make_app(agent: Agent) -> web.Application:
    app = web.Application(middlewares=[errors], client_max_size=MAX_BODY_BYTES)
    app[AGENT_KEY] = agent
    app.router.add_get("/agent/health", health)
    app.router.add_get("/fetchHistoricalData", historical)
    app.router.add_get("/fetchForecastData", forecast)
    app.router.add_get("/fetchOptimizationsData", optimisation)
    app.router.add_get("/fetchTransactionData", transactions)
    app.router.add_get("/v1/plans", plan_versions)
    app.router.add_post("/v1/orders", place_order)
    app.router.add_get("/v1/household", household)
    app.router.add_get("/v1/offers", offers)
    app.router.add_post("/v1/take", take_offer)
    app.router.add_post("/v1/charge", request_charge)
    page.install(app)
    return app
