"""The gateway's OpenAPI document: the node's contract plus the gateway's own refusals.

The routes and models are the node's (gridchain.api.openapi), so one client serves both; what
a gateway adds is refusals: ``POST /v1/txs`` may also answer 429 (a sender over its quota, a
full queue), and every code a filter gives is listed with its status under
``x-gateway-refusals`` so a client can branch on it.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

from gridchain.api.openapi import REF, openapi_document
from gridchain.gateway.errors import REFUSALS

TITLE = "gridchain gateway API"


@functools.cache
def _document() -> dict[str, Any]:
    doc = openapi_document()
    doc["info"]["title"] = TITLE
    doc["info"]["description"] += (
        " Served by a gateway: transactions pass its flood filters before any validator sees "
        "them (see x-gateway-refusals); reads are answered by the validators."
    )
    post = doc["paths"]["/v1/txs"]["post"]
    error = {"$ref": REF.format(model="Error")}
    statuses = sorted({status for status, _ in REFUSALS.values()})
    for status in statuses:
        post["responses"].setdefault(
            str(status),
            {
                "description": "Refused at the gateway",
                "content": {"application/json": {"schema": error}},
            },
        )
    post["responses"]["429"]["headers"] = {
        "Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}
    }
    post["x-gateway-refusals"] = {
        code: {"status": status, "description": text} for code, (status, text) in REFUSALS.items()
    }
    return doc


def gateway_openapi_document() -> dict[str, Any]:
    return copy.deepcopy(_document())
