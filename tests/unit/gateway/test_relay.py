"""Reads relayed to the validators: passed unchanged, and the next validator asked when one
does not answer."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from gridchain.gateway.relay import ReadRelay, RelayUnavailableError
from tests.procs import free_port_block


@pytest.fixture
async def validator_api() -> AsyncIterator[str]:
    async def answer(request: web.Request) -> web.Response:
        return web.json_response({"path_qs": request.rel_url.raw_path_qs}, status=404)

    app = web.Application()
    app.router.add_get("/{tail:.*}", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


async def test_a_read_is_relayed_unchanged_past_a_validator_that_does_not_answer(
    validator_api: str,
) -> None:
    dead = f"http://127.0.0.1:{free_port_block(1)}"  # nothing listens there
    relay = ReadRelay([dead, validator_api], timeout_s=5)
    await relay.start()
    try:
        for _ in range(2):  # whichever the rotation starts with
            status, content_type, body = await relay.get("/v1/orders?address=gc1x&limit=5")
            assert status == 404  # the validator's own status, passed through
            assert content_type == "application/json"
            assert b'"/v1/orders?address=gc1x&limit=5"' in body
    finally:
        await relay.stop()


async def test_no_validator_answering_is_unavailable() -> None:
    relay = ReadRelay([f"http://127.0.0.1:{free_port_block(1)}"], timeout_s=5)
    await relay.start()
    try:
        with pytest.raises(RelayUnavailableError):
            await relay.get("/v1/status")
    finally:
        await relay.stop()
