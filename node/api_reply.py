"""The API's answers: a model as JSON, the error envelope, the middleware that turns the
project's typed errors (and aiohttp's own) into it, and the API's own refusals.

Shared by the validator's API (node/api.py) and the gateway's (gateway/app.py), so a client
cannot tell them apart by their refusals.  Apart from node/api.py because that module brings
the validator (runtime, query, the application and numpy): the gateway, which executes
nothing, imported about 20 MiB of code for these few functions.  The gateway answers a
validator's refusal code with the status of the class that declares it (gateway/verdicts.py),
so the API's refusals are declared here, where it finds them without the validator.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web
from pydantic import BaseModel

from gridchain.api import models as m
from gridchain.protocol.errors import GridchainError

log = structlog.get_logger("gridchain.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class UnavailableError(GridchainError):
    code = "unavailable"
    http_status = 503


class NotFoundError(GridchainError):
    code = "not_found"
    http_status = 404


class GatewaysOnlyError(GridchainError):
    """This validator takes client transactions only from the genesis gateways' links
    (``api.client_txs = "gateways"``, ADR 0024): submit through a gateway."""

    code = "gateways_only"
    http_status = 403


class SealedReadsOnlyError(GridchainError):
    """An open route of private data on a node that serves it only through sealed reads."""

    code = "sealed_reads_only"
    http_status = 403


class ReadsBusyError(GridchainError):
    """Too many sealed reads at once (node/sealed_reads.py)."""

    code = "reads_busy"
    http_status = 503


_HTTP_CODES = {
    404: "not_found",
    405: "method_not_allowed",
    413: "oversize",
    415: "unsupported_media_type",
}


def reply(model: BaseModel, status: int = 200) -> web.Response:
    """A model as the JSON body of a response (the contract's own serialisation)."""
    return web.json_response(text=model.model_dump_json(), status=status)


def error_response(status: int, code: str, message: str) -> web.Response:
    return reply(m.Error(error=m.ErrorBody(code=code, message=message)), status)


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
        response = error_response(exc.status, code, exc.reason or code)
        if isinstance(exc, web.HTTPMethodNotAllowed):  # RFC 9110 15.5.6: a 405 names them
            response.headers["Allow"] = ", ".join(sorted(exc.allowed_methods))
        return response
    except asyncio.CancelledError:
        raise
    except Exception:  # the last line of defence: never leak a trace
        log.exception("unhandled error", path=request.path)
        return error_response(500, "internal", "internal error")
