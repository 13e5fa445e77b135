"""The route table of the node's HTTP API: path, method, parameters and response models.

The node registers exactly these routes (gridchain.node.api binds one handler to each name and
refuses to start with a handler missing or left over), the OpenAPI document is built from this
table, and the client names the same paths, so a route cannot exist without its schema.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel

from gridchain.api import models as m
from gridchain.protocol.governance import DEVICE_ID_PATTERN, MAX_DEVICE_ID_CHARS

#: Most items one list request returns, and the default.
MAX_LIST = 1000
DEFAULT_LIST = 100
#: Decisions one /v1/schedule request returns by default and at most.
SCHEDULE_DEFAULT = 10
SCHEDULE_MAX = 100
#: Blocks one /v1/blocks page holds by default and at most (a block may hold many txs).
BLOCKS_DEFAULT = 20
BLOCKS_MAX = 100
#: Intervals one /v1/pool/prices request returns at most.
POOL_MAX_COUNT = 96
#: Slots one /v1/stats/slots request covers by default and at most.
STATS_SLOTS_DEFAULT = 12
STATS_SLOTS_MAX = 96
#: Intervals one /v1/stats/load request covers by default (at most SCHEDULE_MAX).
STATS_LOAD_DEFAULT = 96
#: Transactions one batch request may carry.
MAX_BATCH_TXS = 1000
U64_MAX = 2**64 - 1
#: The default bound on a request body (api.max_body_bytes): a batch of 1000 transfers is
#: about 350 KiB of JSON.  Declared in the document as ``x-max-body-bytes``.
DEFAULT_MAX_BODY_BYTES = 512 * 1024


@dataclass(frozen=True, slots=True)
class Param:
    """A path or query parameter and the JSON schema of its value."""

    name: str
    where: Literal["path", "query"]
    schema: dict[str, Any]
    description: str
    required: bool = False

    def openapi(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "in": self.where,
            "required": self.where == "path" or self.required,
            "description": self.description,
            "schema": self.schema,
        }


def _uint(lo: int = 0, hi: int = U64_MAX) -> dict[str, Any]:
    return {"type": "integer", "minimum": lo, "maximum": hi}


HASH = {"type": "string", "pattern": r"^[0-9a-fA-F]{64}$", "minLength": 64, "maxLength": 64}
ADDRESS = {"type": "string", "pattern": r"^gc1[0-9a-f]{48}$", "minLength": 51, "maxLength": 51}
MARKET = {"type": "string", "enum": ["day_ahead", "intraday", "0", "1"]}
METER_ID = {"type": "string", "minLength": 1, "maxLength": 64}
DEVICE_ID = {
    "type": "string",
    "pattern": f"^{DEVICE_ID_PATTERN.pattern}$",
    "maxLength": MAX_DEVICE_ID_CHARS,
}


def path(name: str, schema: dict[str, Any], description: str) -> Param:
    return Param(name, "path", schema, description, required=True)


def query(name: str, schema: dict[str, Any], description: str, *, required: bool = False) -> Param:
    return Param(name, "query", schema, description, required=required)


def limit(default: int = DEFAULT_LIST, most: int = MAX_LIST) -> Param:
    return query("limit", _uint(1, most), f"most items returned (1-{most}, default {default})")


@dataclass(frozen=True, slots=True)
class Route:
    """One operation.  ``name`` binds the node's handler; ``response`` is the 2xx model (None
    for the routes that answer with something other than JSON); ``errors`` the refusals."""

    name: str
    method: Literal["GET", "POST"]
    path: str
    summary: str
    response: type[BaseModel] | None
    status: int = 200
    params: tuple[Param, ...] = ()
    errors: tuple[int, ...] = (400,)
    body: tuple[type[BaseModel], ...] = ()
    content_type: str = "application/json"
    #: Further 2xx answers: status -> model (the batch form of POST /v1/txs answers 200).
    other: dict[int, type[BaseModel]] = field(default_factory=dict)

    @property
    def query_names(self) -> frozenset[str]:
        return frozenset(p.name for p in self.params if p.where == "query")


ROUTES: tuple[Route, ...] = (
    Route("get_status", "GET", "/v1/status", "This node's view of the chain", m.Status, errors=()),
    Route(
        "post_tx",
        "POST",
        "/v1/txs",
        "Submit one signed transaction (202), or a batch (200, one result per item)",
        m.TxAccepted,
        status=202,
        body=(m.SubmitTx, m.SubmitBatch),
        errors=(400, 403, 404, 409, 413, 415, 422, 503),
        other={200: m.BatchResults},
    ),
    Route(
        "get_tx",
        "GET",
        "/v1/txs/{hash}",
        "A transaction, committed or pending",
        m.TxRecord,
        params=(path("hash", HASH, "the transaction's hash"),),
        errors=(400, 404),
    ),
    Route(
        "list_blocks",
        "GET",
        "/v1/blocks",
        "Committed blocks in height order, a page at a time",
        m.BlockList,
        params=(
            query("from", _uint(1), "first height (default 1)"),
            limit(BLOCKS_DEFAULT, BLOCKS_MAX),
        ),
    ),
    Route(
        "get_block_by_hash",
        "GET",
        "/v1/blocks/by-hash/{hash}",
        "A committed block by its hash",
        m.BlockView,
        params=(path("hash", HASH, "the block's hash"),),
        errors=(400, 404),
    ),
    Route(
        "get_block",
        "GET",
        "/v1/blocks/{height}",
        "A committed block by height, or the latest",
        m.BlockView,
        params=(
            path(
                "height",
                {"anyOf": [_uint(), {"type": "string", "enum": ["latest"]}]},
                "a height (1 or more; 0 is the genesis state, never a block) or 'latest'",
            ),
        ),
        errors=(400, 404),
    ),
    Route(
        "get_account",
        "GET",
        "/v1/accounts/{address}",
        "An account's balance, escrow and nonces",
        m.Account,
        params=(path("address", ADDRESS, "gc1 address"),),
    ),
    Route(
        "list_participants",
        "GET",
        "/v1/participants",
        "Registered participants, by address",
        m.ParticipantList,
        params=(limit(),),
    ),
    Route(
        "list_proposals",
        "GET",
        "/v1/proposals",
        "Council proposals, by id, with their approvals and outcome",
        m.ProposalList,
        params=(
            limit(),
            query(
                "status",
                {"type": "string", "enum": ["open", "applied", "expired", "failed"]},
                "only proposals of this status",
            ),
        ),
    ),
    Route(
        "get_proposal",
        "GET",
        "/v1/proposals/{id}",
        "One council proposal",
        m.Proposal,
        params=(path("id", HASH, "the proposal's id (its Propose transaction's hash)"),),
        errors=(400, 404),
    ),
    Route(
        "get_params",
        "GET",
        "/v1/params",
        "The chain parameters in force at the head and every council change (ADR 0043)",
        m.ChainParameters,
        errors=(),
    ),
    Route(
        "list_validators",
        "GET",
        "/v1/validators",
        "The validator set of this chain",
        m.ValidatorList,
        errors=(),
    ),
    Route(
        "get_markets",
        "GET",
        "/v1/markets",
        "Market rules of this chain and the first slot open per market",
        m.Markets,
        errors=(),
    ),
    Route(
        "get_book",
        "GET",
        "/v1/markets/{market}/slots/{slot}/book",
        "An order book's price levels, best first (displayed quantities only)",
        m.Book,
        params=(
            path("market", MARKET, "day_ahead or intraday"),
            path("slot", _uint(), "slot index: delivery in [slot*L, (slot+1)*L) ms"),
        ),
    ),
    Route(
        "list_offers",
        "GET",
        "/v1/markets/{market}/slots/{slot}/offers",
        "A book's individual resting orders, each side in matching order (no owner, no "
        "hidden volume): what a taker meets first",
        m.Offers,
        params=(
            path("market", MARKET, "day_ahead or intraday"),
            path("slot", _uint(), "slot index: delivery in [slot*L, (slot+1)*L) ms"),
            limit(),
        ),
    ),
    Route(
        "list_orders",
        "GET",
        "/v1/orders",
        "An address's orders, by slot then id",
        m.OrderList,
        params=(
            query("address", ADDRESS, "the owner", required=True),
            query("slot", _uint(), "only this slot"),
            query(
                "status",
                {"type": "string", "enum": ["open", "filled", "cancelled", "expired"]},
                "only this status",
            ),
            limit(),
        ),
        errors=(400, 403),
    ),
    Route(
        "get_order",
        "GET",
        "/v1/orders/{id}",
        "One order (its id is its PlaceOrder transaction's hash)",
        m.Order,
        params=(path("id", HASH, "the order id"),),
        errors=(400, 403, 404),
    ),
    Route(
        "list_trades",
        "GET",
        "/v1/trades",
        "Trades by slot and trade id",
        m.TradeList,
        params=(
            query("address", ADDRESS, "buyer or seller"),
            query("slot", _uint(), "only this slot"),
            query("market", MARKET, "only this market"),
            limit(),
        ),
        errors=(400, 403),
    ),
    Route(
        "get_pool_prices",
        "GET",
        "/v1/pool/prices",
        "The real-time pool's tariffs and price curve per interval, and a quote",
        m.PoolPrices,
        params=(
            query("slot", _uint(), "first slot (default: the current one)"),
            query("count", _uint(1, POOL_MAX_COUNT), "intervals (1-96, default 4)"),
            query("supply_wh", _uint(0, 2**62), "total supply for a quote (with demand_wh)"),
            query("demand_wh", _uint(0, 2**62), "total demand for a quote (with supply_wh)"),
        ),
    ),
    Route(
        "list_meters",
        "GET",
        "/v1/meters",
        "Registered meters and their reading-chain heads, by id",
        m.MeterList,
        params=(query("owner", ADDRESS, "only this owner's meters"), limit()),
    ),
    Route(
        "get_meter",
        "GET",
        "/v1/meters/{id}",
        "A meter and the head of its reading chain",
        m.Meter,
        params=(path("id", METER_ID, "the meter id"),),
        errors=(400, 404),
    ),
    Route(
        "get_device",
        "GET",
        "/v1/devices/{id}",
        "The meter the council linked a device to (ADR 0048); 404 when it is linked to none",
        m.DeviceLink,
        params=(path("id", DEVICE_ID, "the device id (a charger's OCPP charge point id)"),),
        errors=(400, 404),
    ),
    Route(
        "list_meter_readings",
        "GET",
        "/v1/meters/{id}/readings",
        "A meter's accepted readings in sequence order",
        m.ReadingList,
        params=(
            path("id", METER_ID, "the meter id"),
            query("from_seq", _uint(), "first sequence (default 0)"),
            limit(),
        ),
        errors=(400, 403, 404),
    ),
    Route(
        "list_settlements",
        "GET",
        "/v1/settlements",
        "Settlement receipts by slot and trade id",
        m.ReceiptList,
        params=(
            query("address", ADDRESS, "buyer or seller"),
            query("slot", _uint(), "only this slot"),
            limit(),
        ),
        errors=(400, 403),
    ),
    Route(
        "list_pool_slots",
        "GET",
        "/v1/pool/slots",
        "Settled slots' real-time pools (SDR prices and totals), oldest first",
        m.PoolSlotList,
        params=(query("from_slot", _uint(), "first slot (default 0)"), limit()),
        errors=(400,),
    ),
    Route(
        "list_pool_receipts",
        "GET",
        "/v1/pool/receipts",
        "Pool receipts of households without a contract in the slot, by slot",
        m.PoolReceiptList,
        params=(
            query("address", ADDRESS, "the household"),
            query("slot", _uint(), "only this slot"),
            limit(),
        ),
        errors=(400, 403),
    ),
    Route(
        "get_schedule",
        "GET",
        "/v1/schedule",
        "The committed setpoints: the latest decisions, or one interval's",
        m.Schedule,
        params=(
            query("interval", _uint(), "only this interval (not with limit)"),
            limit(SCHEDULE_DEFAULT, SCHEDULE_MAX),
        ),
        errors=(400, 404),
    ),
    Route(
        "list_cd_requests",
        "GET",
        "/v1/cd",
        "C&D requests, newest first",
        m.CDList,
        params=(
            query("owner", ADDRESS, "only this owner's requests"),
            query(
                "status",
                {"type": "string", "enum": ["open", "complete", "ended"]},
                "only this status",
            ),
            limit(),
        ),
    ),
    Route(
        "get_cd_request",
        "GET",
        "/v1/cd/{id}",
        "One C&D request (its id is its CDRequest transaction's hash)",
        m.CDRequest,
        params=(path("id", HASH, "the request id"),),
        errors=(400, 404),
    ),
    Route(
        "get_cd_receipts",
        "GET",
        "/v1/cd/{id}/receipts",
        "A C&D request's settlement receipts, one per decided interval, oldest first",
        m.CDReceipts,
        params=(path("id", HASH, "the request id"),),
        errors=(400, 404),
    ),
    Route(
        "get_slot_stats",
        "GET",
        "/v1/stats/slots",
        "Per slot: each book's trades, prices and depth, and what settlement made of them "
        "(traded vs metered energy, imbalance, pool prices): public aggregates",
        m.SlotStatsList,
        params=(
            query("from", _uint(), "first slot (default: the current one less 6)"),
            query(
                "count",
                _uint(1, STATS_SLOTS_MAX),
                f"slots (1-{STATS_SLOTS_MAX}, default {STATS_SLOTS_DEFAULT})",
            ),
        ),
    ),
    Route(
        "get_load_stats",
        "GET",
        "/v1/stats/load",
        "The community load against the committed schedule, oldest first, with its PFL",
        m.LoadStats,
        params=(limit(STATS_LOAD_DEFAULT, SCHEDULE_MAX),),
    ),
    Route(
        "events",
        "GET",
        "/v1/events",
        "Websocket: one message per committed block, then its trades, order changes and "
        "schedule decision (the messages are the Event schemas)",
        None,
        status=101,
        errors=(400, 403),  # a plain GET without the websocket upgrade
    ),
    Route(
        "post_sealed_read",
        "POST",
        "/v1/sealed-reads",
        "Read an account's private data (orders, trades, receipts, readings, sealed outcomes) "
        "with a request the owner signed; the answer is sealed to the request's reply key",
        m.SealedReply,
        body=(m.SealedReadRequest,),
        errors=(400, 403, 404, 409, 413, 415, 503),
    ),
    *(
        Route(name, "GET", url, summary, None, errors=(), content_type=content_type)
        for name, url, content_type, summary in (
            ("ui_page", "/ui/", "text/html", "The operator page (read-only; docs/ui.md)"),
            ("ui_script", "/ui/operator.js", "text/javascript", "The operator page's script"),
            ("ui_kit_script", "/ui/pagekit.js", "text/javascript", "What both web pages share"),
            ("ui_style", "/ui/operator.css", "text/css", "The operator page's style"),
            ("ui_chart_script", "/ui/uplot.min.js", "text/javascript", "uPlot, vendored (MIT)"),
            ("ui_chart_style", "/ui/uplot.min.css", "text/css", "uPlot's style, vendored"),
            ("ui_chart_license", "/ui/uplot-LICENSE.txt", "text/plain", "uPlot's license"),
        )
    ),
    Route("get_health", "GET", "/health", "Liveness: 503 once halted", m.Health, errors=(503,)),
    Route(
        "get_metrics",
        "GET",
        "/metrics",
        "Prometheus metrics",
        None,
        errors=(),
        content_type="text/plain",
    ),
    Route("get_openapi", "GET", "/openapi.json", "This document", None, errors=()),
)

ROUTES_BY_NAME: dict[str, Route] = {r.name: r for r in ROUTES}
#: The operator page's files (ADR 0038): static, the same on every node and gateway.
UI_ROUTES: tuple[Route, ...] = tuple(r for r in ROUTES if r.name.startswith("ui_"))
#: The open routes of an account's private data (docs/sealed.md): a node configured with
#: ``api.sealed_reads_only`` refuses them (403 ``sealed_reads_only``), leaving the sealed read.
PRIVATE_ROUTES: frozenset[str] = frozenset(
    {
        "list_orders",
        "get_order",
        "list_trades",
        "list_settlements",
        "list_pool_receipts",
        "list_meter_readings",
        "events",
    }
)
