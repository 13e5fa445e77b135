"""The websocket feed announces each committed block with its transactions."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.procs import Chain, NodeProcess

pytestmark = pytest.mark.integration


async def test_block_committed_event(solo_chain: Chain, solo_node: NodeProcess) -> None:
    tx = solo_chain.transfer(0, 1, 0, 250)
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(solo_node.api_url + "/v1/events") as ws,
    ):
        async with session.post(
            solo_node.api_url + "/v1/txs", json={"tx": tx.encode().hex()}
        ) as resp:
            assert resp.status == 202
        event = await asyncio.wait_for(ws.receive_json(), timeout=20)
    assert event["type"] == "block_committed"
    assert event["height"] == 1
    assert event["txs"] == [tx.hash().hex()]
