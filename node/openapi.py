"""The OpenAPI 3.1 description of the node API, served at /openapi.json.

Kept as data next to the handlers; a test checks that every route the app serves is described
here and that the document is valid OpenAPI.
"""

from __future__ import annotations

from typing import Any

_ERROR = {
    "description": "Refused: a typed error",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}


def _json(schema_ref: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_ref}"}}},
    }


def _path_param(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string"},
    }


def _query_param(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


_UINT = {"type": "integer", "minimum": 0}
_LEVEL = {
    "type": "object",
    "required": ["price_mc_per_kwh", "quantity_wh", "orders"],
    "properties": {
        "price_mc_per_kwh": _UINT,
        "quantity_wh": {**_UINT, "description": "displayed quantity only"},
        "orders": _UINT,
    },
}


def _market_paths() -> dict[str, Any]:
    """The order books, orders, trades and pool of docs/markets.md."""
    list_limit = _query_param(
        "limit", "most items returned (1-1000, default 100)", {"type": "integer"}
    )
    return {
        "/v1/markets": {
            "get": {
                "summary": "Market rules of this chain and the first slot open per market",
                "responses": {"200": _json("Markets", "Rules and open slots")},
            }
        },
        "/v1/markets/{market}/slots/{slot}/book": {
            "get": {
                "summary": "An order book's price levels, best first (displayed quantities only)",
                "parameters": [
                    _path_param("market", "day_ahead or intraday"),
                    _path_param("slot", "slot index: delivery in [slot*L, (slot+1)*L) ms"),
                ],
                "responses": {"200": _json("Book", "The book"), "400": _ERROR},
            }
        },
        "/v1/orders": {
            "get": {
                "summary": "An address's orders, by slot then id",
                "parameters": [
                    {
                        "name": "address",
                        "in": "query",
                        "required": True,
                        "description": "gc1 address",
                        "schema": {"type": "string"},
                    },
                    _query_param("slot", "only this slot", {"type": "integer"}),
                    _query_param(
                        "status",
                        "only this status",
                        {"enum": ["open", "filled", "cancelled", "expired", "rejected"]},
                    ),
                    list_limit,
                ],
                "responses": {"200": _json("OrderList", "The orders"), "400": _ERROR},
            }
        },
        "/v1/orders/{id}": {
            "get": {
                "summary": "An order (its id is the hash of its PlaceOrder transaction)",
                "parameters": [_path_param("id", "64 hex digits")],
                "responses": {"200": _json("Order", "Found"), "400": _ERROR, "404": _ERROR},
            }
        },
        "/v1/trades": {
            "get": {
                "summary": "Trades (contracts awaiting settlement), by slot then trade id",
                "parameters": [
                    _query_param("address", "as buyer or seller", {"type": "string"}),
                    _query_param("slot", "only this slot", {"type": "integer"}),
                    _query_param("market", "day_ahead or intraday", {"type": "string"}),
                    list_limit,
                ],
                "responses": {"200": _json("TradeList", "The trades"), "400": _ERROR},
            }
        },
        "/v1/pool/prices": {
            "get": {
                "summary": "Real-time pool: tariffs and SDR price curve per interval",
                "parameters": [
                    _query_param("slot", "first interval (default: now)", {"type": "integer"}),
                    _query_param("count", "intervals (1-96, default 4)", {"type": "integer"}),
                    _query_param("supply_wh", "total net supply for a quote", {"type": "integer"}),
                    _query_param("demand_wh", "total net demand for a quote", {"type": "integer"}),
                ],
                "responses": {"200": _json("PoolPrices", "Per interval"), "400": _ERROR},
            }
        },
    }


def _market_schemas() -> dict[str, Any]:
    string = {"type": "string"}
    order = {
        "type": "object",
        "required": ["id", "owner", "market", "slot", "side", "status", "open_wh"],
        "properties": {
            "id": string,
            "owner": string,
            "market": {"enum": ["day_ahead", "intraday"]},
            "slot": _UINT,
            "side": {"enum": ["buy", "sell"]},
            "device": {"enum": ["EV", "Battery", "PV", "Load"]},
            "price_mc_per_kwh": _UINT,
            "quantity_wh": _UINT,
            "iceberg": {"type": "boolean"},
            "peak_wh": _UINT,
            "open_wh": _UINT,
            "display_wh": _UINT,
            "hidden_wh": _UINT,
            "filled_wh": _UINT,
            "cancelled_wh": _UINT,
            "locked_mc": _UINT,
            "status": {"enum": ["open", "filled", "cancelled", "expired", "rejected"]},
            "seq": _UINT,
            "placed_height": _UINT,
            "placed_ms": _UINT,
            "expires_ms": _UINT,
        },
    }
    trade = {
        "type": "object",
        "required": ["trade_id", "slot", "seller", "buyer", "quantity_wh", "price_mc_per_kwh"],
        "properties": {
            "trade_id": _UINT,
            "market": {"enum": ["day_ahead", "intraday"]},
            "slot": _UINT,
            "seller": string,
            "buyer": string,
            "sell_order": string,
            "buy_order": string,
            "quantity_wh": _UINT,
            "price_mc_per_kwh": _UINT,
            "amount_mc": {**_UINT, "description": "held in the buyer's escrow until settlement"},
            "aggressor": {"enum": ["buy", "sell"]},
            "height": _UINT,
            "timestamp_ms": _UINT,
            "status": {"enum": ["awaiting_settlement", "settled"]},
        },
    }
    return {
        "Markets": {
            "type": "object",
            "required": ["markets", "slot_length_ms", "gate_closure_ms", "matching_rule"],
            "properties": {
                "markets": {"type": "array", "items": string},
                "slot_length_ms": _UINT,
                "gate_closure_ms": _UINT,
                "day_ahead_gate_closure_ms": _UINT,
                "order_horizon_ms": _UINT,
                "matching_rule": {"enum": ["price_time", "adbev"]},
                "adbev_price_weight": _UINT,
                "adbev_time_weight": _UINT,
                "iceberg_execution": {"enum": ["standard", "aggressive", "passive", "adaptive"]},
                "iceberg_waiting_limit_ms": _UINT,
                "now_ms": _UINT,
                "current_slot": _UINT,
                "first_open_slot": {"type": "object", "additionalProperties": _UINT},
            },
        },
        "Book": {
            "type": "object",
            "required": ["market", "slot", "gate_closure_ms", "bids", "asks"],
            "properties": {
                "market": string,
                "slot": _UINT,
                "start_ms": _UINT,
                "end_ms": _UINT,
                "gate_closure_ms": {"type": "integer"},
                "open": {"type": "boolean"},
                "height": _UINT,
                "matching_rule": string,
                "bids": {"type": "array", "items": _LEVEL},
                "asks": {"type": "array", "items": _LEVEL},
                "best_bid": {"type": ["integer", "null"]},
                "best_ask": {"type": ["integer", "null"]},
            },
        },
        "Order": order,
        "OrderList": {
            "type": "object",
            "required": ["address", "orders"],
            "properties": {"address": string, "orders": {"type": "array", "items": order}},
        },
        "Trade": trade,
        "TradeList": {
            "type": "object",
            "required": ["trades"],
            "properties": {"trades": {"type": "array", "items": trade}},
        },
        "PoolPrices": {
            "type": "object",
            "required": ["intervals"],
            "properties": {"intervals": {"type": "array", "items": {"type": "object"}}},
        },
    }


def _meter_paths() -> dict[str, Any]:
    """Meters, their readings and settlement receipts (docs/markets.md, Settlement)."""
    list_limit = _query_param(
        "limit", "most items returned (1-1000, default 100)", {"type": "integer"}
    )
    return {
        "/v1/meters/{id}": {
            "get": {
                "summary": "A meter and the head of its reading chain (a bridge resumes from it)",
                "parameters": [_path_param("id", "meter id (1-64 bytes of UTF-8)")],
                "responses": {"200": _json("Meter", "Found"), "400": _ERROR, "404": _ERROR},
            }
        },
        "/v1/meters/{id}/readings": {
            "get": {
                "summary": "A meter's accepted readings in sequence order",
                "parameters": [
                    _path_param("id", "meter id"),
                    _query_param("from_seq", "first sequence (default 0)", {"type": "integer"}),
                    list_limit,
                ],
                "responses": {
                    "200": _json("ReadingList", "The readings"),
                    "400": _ERROR,
                    "404": _ERROR,
                },
            }
        },
        "/v1/settlements": {
            "get": {
                "summary": "Settlement receipts (one per settled trade), by slot then trade id",
                "parameters": [
                    _query_param("address", "as buyer or seller", {"type": "string"}),
                    _query_param("slot", "only this slot", {"type": "integer"}),
                    list_limit,
                ],
                "responses": {"200": _json("ReceiptList", "The receipts"), "400": _ERROR},
            }
        },
    }


def _meter_schemas() -> dict[str, Any]:
    string = {"type": "string"}
    integer = {"type": "integer"}
    nullable_uint = {"type": ["integer", "null"], "minimum": 0}
    party_reading = {
        "type": "object",
        "description": "summed registers: export (seller) or import (buyer); import - export "
        "for net meters",
        "properties": {
            "start_wh": integer,
            "end_wh": integer,
            "metered_wh": _UINT,
            "metering": {"enum": ["complete", "missing_readings", "no_meter"]},
        },
    }
    reading = {
        "type": "object",
        "required": ["sequence", "interval_start_ms", "interval_end_ms", "hash"],
        "properties": {
            "sequence": _UINT,
            "interval_start_ms": _UINT,
            "interval_end_ms": _UINT,
            "import_wh": _UINT,
            "export_wh": _UINT,
            "power_w": integer,
            "voltage_dv": _UINT,
            "status": string,
            "prev_hash": string,
            "hash": string,
            "height": _UINT,
        },
    }
    receipt = {
        "type": "object",
        "required": ["trade_id", "slot", "seller", "buyer", "delivered_wh", "status"],
        "properties": {
            "trade_id": _UINT,
            "market": {"enum": ["day_ahead", "intraday"]},
            "slot": _UINT,
            "seller": string,
            "buyer": string,
            "seller_device": string,
            "buyer_device": string,
            "seller_reading": party_reading,
            "buyer_reading": party_reading,
            "quantity_wh": _UINT,
            "delivered_wh": _UINT,
            "taken_wh": _UINT,
            "shortfall_wh": _UINT,
            "price_mc_per_kwh": _UINT,
            "escrow_mc": _UINT,
            "paid_mc": _UINT,
            "released_mc": _UINT,
            "fine_mc": _UINT,
            "fine_paid_mc": _UINT,
            "pool": {"type": "object"},
            "status": {"enum": ["delivered", "partial", "not_delivered"]},
            "height": _UINT,
            "settled_ms": _UINT,
        },
    }
    return {
        "Meter": {
            "type": "object",
            "required": [
                "meter_id",
                "owner",
                "meter_type",
                "bridge_key",
                "profile",
                "last_sequence",
                "last_hash",
                "last_interval_end_ms",
            ],
            "properties": {
                "meter_id": string,
                "owner": string,
                "meter_type": {
                    "enum": ["PV", "ExternalGenerator", "EV", "Battery", "Loadmeter", "Netmeter"]
                },
                "bridge_key": {**string, "description": "hex Ed25519 public key"},
                "profile": string,
                "registered_height": _UINT,
                "last_sequence": {**nullable_uint, "description": "null before the first reading"},
                "last_hash": {"type": ["string", "null"]},
                "last_interval_end_ms": nullable_uint,
                "last_import_wh": nullable_uint,
                "last_export_wh": nullable_uint,
            },
        },
        "ReadingList": {
            "type": "object",
            "required": ["meter_id", "readings"],
            "properties": {"meter_id": string, "readings": {"type": "array", "items": reading}},
        },
        "Receipt": receipt,
        "ReceiptList": {
            "type": "object",
            "required": ["receipts"],
            "properties": {"receipts": {"type": "array", "items": receipt}},
        },
    }


def _cd_paths() -> dict[str, Any]:
    """C&D requests and the committed schedule (docs/scheduling.md, "On chain")."""
    return {
        "/v1/schedule": {
            "get": {
                "summary": "The committed C&D setpoints: the latest decisions, newest first, "
                "or one interval's",
                "parameters": [
                    _query_param(
                        "interval",
                        "only this interval (404 if it was not decided or is no longer kept); "
                        "not together with limit",
                        {"type": "integer", "minimum": 0},
                    ),
                    _query_param(
                        "limit",
                        "most decisions returned (1-100, default 10)",
                        {"type": "integer", "minimum": 1, "maximum": 100},
                    ),
                ],
                "responses": {
                    "200": _json("Schedule", "The decisions and the scheduling head"),
                    "400": _ERROR,
                    "404": _ERROR,
                },
            }
        },
        "/v1/cd": {
            "get": {
                "summary": "C&D requests, newest first (by submission height, then id)",
                "parameters": [
                    _query_param("owner", "only this owner's (gc1 address)", {"type": "string"}),
                    _query_param(
                        "status", "only this status", {"enum": ["open", "complete", "ended"]}
                    ),
                    _query_param(
                        "limit",
                        "most items returned (1-1000, default 100)",
                        {"type": "integer", "minimum": 1, "maximum": 1000},
                    ),
                ],
                "responses": {"200": _json("CDRequestList", "The requests"), "400": _ERROR},
            }
        },
        "/v1/cd/{id}": {
            "get": {
                "summary": "A C&D request (its id is the hash of its CDRequest transaction)",
                "parameters": [_path_param("id", "64 hex digits")],
                "responses": {"200": _json("CDRequest", "Found"), "400": _ERROR, "404": _ERROR},
            }
        },
    }


def _cd_schemas() -> dict[str, Any]:
    string = {"type": "string"}
    integer = {"type": "integer"}
    nullable_string = {"type": ["string", "null"]}
    cd_request = {
        "type": "object",
        "required": ["id", "owner", "kind", "device", "first_interval", "end_interval", "status"],
        "properties": {
            "id": {**string, "description": "hash of the CDRequest transaction"},
            "owner": string,
            "kind": {"enum": ["charge", "discharge"]},
            "device": {"enum": ["EV", "Battery"]},
            "arrival_ms": _UINT,
            "departure_ms": _UINT,
            "energy_wh": _UINT,
            "max_rate_w": _UINT,
            "limit_price_mc_per_kwh": _UINT,
            "first_interval": {**_UINT, "description": "first interval it may be scheduled in"},
            "end_interval": {**_UINT, "description": "window is [first_interval, end_interval)"},
            "window_start_ms": {**_UINT, "description": "block time first_interval starts"},
            "window_end_ms": {**_UINT, "description": "block time end_interval starts"},
            "cap_units": {
                **_UINT,
                "description": "W-intervals it must receive (charge) or may give (discharge)",
            },
            "delivered_units": _UINT,
            "remaining_units": _UINT,
            "delivered_wh": {
                **_UINT,
                "description": "delivered_units * interval_minutes / 60, rounded down",
            },
            "remaining_wh": {
                **_UINT,
                "description": "remaining_units * interval_minutes / 60, rounded up (charge) "
                "or down (discharge), at most energy_wh",
            },
            "submitted_height": _UINT,
            "status": {"enum": ["open", "complete", "ended"]},
        },
    }
    entry = {
        "type": "object",
        "required": ["request_id", "rate_w"],
        "properties": {
            "request_id": string,
            "owner": nullable_string,
            "kind": {"enum": ["charge", "discharge", None]},
            "device": {"enum": ["EV", "Battery", None]},
            "rate_w": {**integer, "description": "setpoint in W; negative = discharge"},
        },
    }
    decision = {
        "type": "object",
        "required": ["interval", "start_ms", "end_ms", "height", "load_w", "benefit", "entries"],
        "properties": {
            "interval": _UINT,
            "start_ms": {**_UINT, "description": "block time the interval starts"},
            "end_ms": _UINT,
            "height": {**_UINT, "description": "the block that decided it"},
            "base_load_w": integer,
            "load_w": {**integer, "description": "base load plus the scheduled rates"},
            "benefit": {**string, "description": "decimal integer (may exceed 2^53)"},
            "entries": {"type": "array", "items": entry},
        },
    }
    return {
        "CDRequest": cd_request,
        "CDRequestList": {
            "type": "object",
            "required": ["owner", "requests"],
            "properties": {
                "owner": nullable_string,
                "requests": {"type": "array", "items": cd_request},
            },
        },
        "Decision": decision,
        "Schedule": {
            "type": "object",
            "required": ["next_interval", "open_requests", "decisions"],
            "properties": {
                "next_interval": {**_UINT, "description": "the next interval to decide"},
                "open_requests": _UINT,
                "interval_ms": _UINT,
                "interval_minutes": _UINT,
                "current_interval": {**_UINT, "description": "the interval of the node's clock"},
                "decisions": {"type": "array", "items": decision},
            },
        },
        "ScheduleEvent": {
            "type": "object",
            "description": 'websocket message "type": "schedule" after its block\'s message',
            "required": ["type", "height", "interval", "load_w", "benefit", "entries"],
            "properties": {
                "type": {"const": "schedule"},
                "height": _UINT,
                "interval": _UINT,
                "start_ms": _UINT,
                "end_ms": _UINT,
                "base_load_w": integer,
                "load_w": integer,
                "benefit": string,
                "entries": {"type": "array", "items": entry},
            },
        },
    }


def openapi_document() -> dict[str, Any]:
    obj = {"type": "object"}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "gridchain node API",
            "version": "1",
            "description": "Amounts are integers: energy in Wh, money in milli-credits (mc), "
            "prices in mc/kWh, times in ms since the epoch.",
        },
        "paths": {
            "/v1/status": {
                "get": {
                    "summary": "Chain head, consensus state and mempool of this node",
                    "responses": {"200": _json("Status", "Node status")},
                }
            },
            "/v1/txs": {
                "post": {
                    "summary": "Submit a signed transaction",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "oneOf": [
                                        {
                                            "type": "object",
                                            "required": ["tx"],
                                            "additionalProperties": False,
                                            "properties": {
                                                "tx": {
                                                    "type": "string",
                                                    "description": "hex of the canonical encoding",
                                                }
                                            },
                                        },
                                        {
                                            "type": "object",
                                            "required": ["txs"],
                                            "additionalProperties": False,
                                            "properties": {
                                                "txs": {
                                                    "type": "array",
                                                    "minItems": 1,
                                                    "maxItems": 1000,
                                                    "items": {"type": "string"},
                                                    "description": "a batch, admitted in order",
                                                }
                                            },
                                        },
                                    ]
                                }
                            },
                            "application/msgpack": {
                                "schema": {"type": "string", "format": "binary"}
                            },
                        },
                    },
                    "responses": {
                        "200": _json("BatchResults", "A batch: one result per transaction"),
                        "202": _json("Accepted", "Admitted to the mempool"),
                        "400": _ERROR,
                        "403": _ERROR,
                        "409": _ERROR,
                        "413": _ERROR,
                        "422": _ERROR,
                        "503": _ERROR,
                    },
                }
            },
            "/v1/txs/{hash}": {
                "get": {
                    "summary": "A transaction, pending or committed",
                    "parameters": [_path_param("hash", "64 hex digits")],
                    "responses": {"200": _json("TxStatus", "Found"), "400": _ERROR, "404": _ERROR},
                }
            },
            "/v1/blocks/{height}": {
                "get": {
                    "summary": "A committed block with its certificate",
                    "parameters": [_path_param("height", "a height or 'latest'")],
                    "responses": {"200": _json("Block", "Found"), "400": _ERROR, "404": _ERROR},
                }
            },
            "/v1/accounts/{address}": {
                "get": {
                    "summary": "Balance, escrow and nonce of an address",
                    "parameters": [_path_param("address", "gc1 address with checksum")],
                    "responses": {"200": _json("Account", "The account"), "400": _ERROR},
                }
            },
            **_market_paths(),
            **_meter_paths(),
            **_cd_paths(),
            "/v1/events": {
                "get": {
                    "summary": "Websocket: one JSON message per committed block, then one per "
                    'trade ("type": "trade") and per order change ("type": "order"), then, if '
                    'the block decided an interval, its setpoints ("type": "schedule", see '
                    "the ScheduleEvent schema)",
                    "responses": {"101": {"description": "Switching to websocket"}},
                }
            },
            "/health": {
                "get": {
                    "summary": "Liveness: 200 while the node commits, 503 when halted",
                    "responses": {"200": {"description": "OK"}, "503": _ERROR},
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "responses": {
                        "200": {
                            "description": "text exposition format",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "responses": {"200": {"description": "OpenAPI 3.1"}},
                }
            },
        },
        "components": {
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["code", "message"],
                            "properties": {
                                "code": {"type": "string"},
                                "message": {"type": "string"},
                            },
                        }
                    },
                },
                "Accepted": {
                    "type": "object",
                    "required": ["hash", "status"],
                    "properties": {"hash": {"type": "string"}, "status": {"const": "pending"}},
                },
                "BatchResults": {
                    "type": "object",
                    "required": ["results"],
                    "properties": {
                        "results": {
                            "type": "array",
                            "items": {
                                "oneOf": [
                                    {"$ref": "#/components/schemas/Accepted"},
                                    {"$ref": "#/components/schemas/Error"},
                                ]
                            },
                        }
                    },
                },
                "Status": {
                    "type": "object",
                    "required": ["node", "chain_id", "height", "head_hash", "state_root"],
                    "properties": {
                        "node": {"type": "string"},
                        "chain_id": {"type": "string"},
                        "chain_name": {"type": "string"},
                        "height": {"type": "integer"},
                        "head_hash": {"type": "string"},
                        "head_time_ms": {"type": "integer"},
                        "state_root": {"type": "string"},
                        "consensus": obj,
                        "mempool": obj,
                        "validator": {"type": "string"},
                        "peers": {"type": "array"},
                        "halted": {"type": ["string", "null"]},
                    },
                },
                "TxStatus": {
                    "type": "object",
                    "required": ["hash", "status", "tx"],
                    "properties": {
                        "hash": {"type": "string"},
                        "status": {"enum": ["pending", "committed"]},
                        "height": {"type": ["integer", "null"]},
                        "index": {"type": ["integer", "null"]},
                        "block_hash": {"type": "string"},
                        "tx": obj,
                    },
                },
                "Block": {
                    "type": "object",
                    "required": ["height", "hash", "header", "txs", "certificate"],
                    "properties": {
                        "height": {"type": "integer"},
                        "hash": {"type": "string"},
                        "header": obj,
                        "txs": {"type": "array", "items": obj},
                        "schedule": {"type": "array"},
                        "certificate": obj,
                    },
                },
                **_market_schemas(),
                **_meter_schemas(),
                **_cd_schemas(),
                "Account": {
                    "type": "object",
                    "required": ["address", "balance_mc", "nonce", "pending_nonce"],
                    "properties": {
                        "address": {"type": "string"},
                        "balance_mc": {"type": "integer"},
                        "locked_mc": {"type": "integer"},
                        "spendable_mc": {"type": "integer"},
                        "nonce": {"type": "integer"},
                        "pending_nonce": {"type": "integer"},
                        "registered": {"type": "boolean"},
                        "name": {"type": ["string", "null"]},
                    },
                },
            }
        },
    }
