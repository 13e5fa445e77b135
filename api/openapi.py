"""The OpenAPI 3.1 document of the node API, generated from the route table and the models.

Nothing here is written by hand but the titles: every path comes from
:data:`gridchain.api.routes.ROUTES` (the table the node registers its handlers from) and every
schema is pydantic's JSON schema of a model in :mod:`gridchain.api.models`.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from gridchain.api import models as m
from gridchain.api.routes import DEFAULT_MAX_BODY_BYTES, ROUTES, Route

REF = "#/components/schemas/{model}"
TITLE = "gridchain node API"
VERSION = "1"
#: Models documented although no route answers with them directly: the websocket's messages.
EVENT_MODELS: tuple[type[BaseModel], ...] = (
    m.BlockCommittedEvent,
    m.TradeEvent,
    m.OrderEvent,
    m.ScheduleEvent,
)

_REASONS = {
    400: "Refused: a malformed request",
    403: "Refused: the sender may not do this (code gateways_only: this validator takes "
    "client transactions only through a gateway)",
    404: "Not found",
    409: "Refused by the ledger's rules",
    413: "Body too large",
    415: "Unsupported content type",
    422: "Refused: well-formed but not acceptable",
    503: "Halted or unavailable",
}


def _models() -> list[tuple[type[BaseModel], JsonSchemaMode]]:
    found: list[type[BaseModel]] = [m.Error, *EVENT_MODELS]
    for route in ROUTES:
        found.extend(route.body)
        if route.response is not None:
            found.append(route.response)
        found.extend(route.other.values())
    out: list[tuple[type[BaseModel], JsonSchemaMode]] = []
    for model in dict.fromkeys(found):
        out.append((model, "validation" if model in _request_models() else "serialization"))
    return out


def _request_models() -> set[type[BaseModel]]:
    return {model for route in ROUTES for model in route.body}


def _json(ref: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ref}}}


def _operation(route: Route, refs: dict[type[BaseModel], dict[str, Any]]) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    if route.response is not None:
        responses[str(route.status)] = _json(refs[route.response], route.summary)
    elif route.status == 101:
        responses["101"] = {"description": "Switching to the websocket"}
    elif route.content_type != "application/json":
        responses["200"] = {
            "description": route.summary,
            "content": {route.content_type: {"schema": {"type": "string"}}},
        }
    else:
        responses["200"] = _json({"type": "object"}, route.summary)
    for status, model in route.other.items():
        responses[str(status)] = _json(refs[model], model.__doc__ or model.__name__)
    error = {"$ref": REF.format(model="Error")}
    for status in route.errors:
        responses[str(status)] = _json(error, _REASONS.get(status, "Refused"))
    op: dict[str, Any] = {
        "operationId": route.name,
        "summary": route.summary,
        "responses": responses,
    }
    if route.params:
        op["parameters"] = [p.openapi() for p in route.params]
    if route.body:
        bodies = [refs[model] for model in route.body]
        op["requestBody"] = {
            "required": True,
            "description": f"at most {DEFAULT_MAX_BODY_BYTES} bytes by default "
            "(api.max_body_bytes); a larger body is a 413",
            "x-max-body-bytes": DEFAULT_MAX_BODY_BYTES,
            "content": {
                "application/json": {"schema": bodies[0] if len(bodies) == 1 else {"oneOf": bodies}}
            },
        }
    return op


@functools.cache
def _document() -> dict[str, Any]:
    mapping, top = models_json_schema(_models(), ref_template=REF)
    refs: dict[type[BaseModel], dict[str, Any]] = {}
    for (model, _), schema in mapping.items():
        if isinstance(model, type) and issubclass(model, BaseModel):
            refs[model] = dict(schema)
    paths: dict[str, Any] = {}
    for route in ROUTES:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, refs)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": TITLE,
            "version": VERSION,
            "description": "JSON under /v1. Errors: a status code and "
            '{"error": {"code": "...", "message": "..."}}. Amounts are integers: _mc '
            "millicredits, _wh watt-hours, _w watts, _ms milliseconds since the epoch.",
        },
        "paths": paths,
        "components": {"schemas": top.get("$defs", {})},
    }


def openapi_document() -> dict[str, Any]:
    """The document served at /openapi.json (built once; callers get a fresh copy)."""
    return copy.deepcopy(_document())
