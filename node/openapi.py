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
                                    "type": "object",
                                    "required": ["tx"],
                                    "additionalProperties": False,
                                    "properties": {
                                        "tx": {
                                            "type": "string",
                                            "description": "hex of the canonical encoding",
                                        }
                                    },
                                }
                            },
                            "application/msgpack": {
                                "schema": {"type": "string", "format": "binary"}
                            },
                        },
                    },
                    "responses": {
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
            "/v1/events": {
                "get": {
                    "summary": "Websocket: one JSON message per committed block",
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
