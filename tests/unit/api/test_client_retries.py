"""The client's one retry policy, against a real aiohttp server on loopback.

Why: the wallet, the meter bridge, the launcher and the benchmarks all rely on it, so what is
retried (connection failures, 429 and 5xx, for GETs and for POSTs of signed transactions) and
what is not (a refusal, a timeout) is checked here once.
"""

from __future__ import annotations

import pytest
from aiohttp import web

from gridchain.api.client import NodeClient, NodeRefusedError, NodeResponseError
from gridchain.protocol.crypto import SigningKey
from gridchain.protocol.tx import Transfer, sign_tx
from tests.unit.wallet.conftest import CHAIN_ID, error_response, serve

KEY = SigningKey(bytes([5]) * 32)


def _health_app(answers: list[web.Response]) -> tuple[web.Application, list[int]]:
    calls: list[int] = []

    async def health(request: web.Request) -> web.Response:
        calls.append(1)
        return answers.pop(0)

    app = web.Application()
    app.router.add_get("/health", health)
    return app, calls


async def test_a_busy_or_failing_node_is_asked_again_with_backoff() -> None:
    app, calls = _health_app(
        [
            error_response(503, "unavailable", "busy"),
            web.json_response({"error": "x"}, status=429),
            web.json_response({"status": "ok", "height": 7}),
        ]
    )
    async with serve(app) as url, NodeClient(url, backoff_s=0.001) as client:
        health = await client.health()
    assert (health.height, len(calls)) == (7, 3)


async def test_retries_end_with_the_last_answer() -> None:
    app, calls = _health_app([error_response(503, "halted", "stopped") for _ in range(3)])
    async with serve(app) as url, NodeClient(url, retries=2, backoff_s=0.001) as client:
        with pytest.raises(NodeRefusedError) as info:
            await client.health()
    assert (info.value.status, info.value.node_code, info.value.attempts) == (503, "halted", 3)
    assert len(calls) == 3


async def test_a_refusal_is_not_retried() -> None:
    app, calls = _health_app([error_response(400, "invalid_request", "no")])
    async with serve(app) as url, NodeClient(url, backoff_s=0.001) as client:
        with pytest.raises(NodeRefusedError):
            await client.health()
    assert len(calls) == 1


async def test_a_resent_transaction_the_node_already_holds_counts_as_accepted() -> None:
    """The first POST reached the node but its answer was lost (a 502 from a proxy here);
    the second copy is refused as a duplicate, which means the transaction is in."""
    tx = sign_tx(KEY, CHAIN_ID, 0, Transfer(bytes(20), 1, ""))
    answers = [
        web.json_response({"detail": "bad gateway"}, status=502),
        error_response(409, "duplicate_tx", "already pending"),
    ]

    async def submit(request: web.Request) -> web.Response:
        return answers.pop(0)

    app = web.Application()
    app.router.add_post("/v1/txs", submit)
    async with serve(app) as url, NodeClient(url, backoff_s=0.001) as client:
        assert await client.submit_tx(tx) == tx.hash().hex()
    assert answers == []


async def test_a_duplicate_on_the_first_attempt_stays_a_refusal() -> None:
    tx = sign_tx(KEY, CHAIN_ID, 0, Transfer(bytes(20), 1, ""))

    async def submit(request: web.Request) -> web.Response:
        return error_response(409, "duplicate_tx", "already pending")

    app = web.Application()
    app.router.add_post("/v1/txs", submit)
    async with serve(app) as url, NodeClient(url, backoff_s=0.001) as client:
        with pytest.raises(NodeRefusedError) as info:
            await client.submit_tx(tx)
    assert info.value.node_code == "duplicate_tx"


async def test_a_5xx_without_an_error_object_is_a_response_error_after_the_retries() -> None:
    app, calls = _health_app([web.json_response({"detail": "x"}, status=500) for _ in range(2)])
    async with serve(app) as url, NodeClient(url, retries=1, backoff_s=0.001) as client:
        with pytest.raises(NodeResponseError, match="HTTP 500"):
            await client.health()
    assert len(calls) == 2
