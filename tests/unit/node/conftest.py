"""A solo validator running in this process, with its HTTP API on a loopback port.

The node runs on the test's event loop (no subprocess), so a test can drive its API with
aiohttp and read its committed state directly.  Its genesis has short scheduling intervals
(1 s of block time standing for 10 minutes of energy) so C&D decisions happen in seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from gridchain.node.api import build_app
from gridchain.node.config import load_config
from gridchain.node.runtime import Node
from gridchain.protocol.tx import CDRequest, Device, Transaction, sign_tx
from tests.helpers import cd_meter_id, cd_meters
from tests.procs import Chain, make_chain

#: A charge limit no tariff reaches.
NO_CHARGE_LIMIT = 2**64 - 1

#: Block time of one scheduling interval in these tests, and the minutes of energy it stands for.
INTERVAL_MS = 1000
INTERVAL_MINUTES = 10


@dataclass
class LiveNode:
    chain: Chain
    node: Node
    url: str
    session: aiohttp.ClientSession

    async def get(self, path: str) -> tuple[int, Any]:
        async with self.session.get(self.url + path) as resp:
            return resp.status, await resp.json()

    async def post_tx(self, tx: Transaction) -> tuple[int, Any]:
        async with self.session.post(self.url + "/v1/txs", json={"tx": tx.encode().hex()}) as resp:
            return resp.status, await resp.json()

    async def wait_committed(self, tx_hash: str, timeout_s: float = 15.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            status, body = await self.get(f"/v1/txs/{tx_hash}")
            if status == 200 and body["status"] == "committed":
                result: dict[str, Any] = body
                return result
            await asyncio.sleep(0.05)
        raise AssertionError(f"tx {tx_hash} not committed within {timeout_s} s")

    def cd_tx(
        self,
        peer: int,
        nonce: int,
        *,
        kind: int = 1,
        device: int = 0,
        arrive_in_ms: int = 0,
        stay_ms: int = 5 * INTERVAL_MS,
        energy_wh: int = 1000,
        max_rate_w: int = 3000,
        limit_price: int | None = None,
        meter_id: str | None = None,
    ) -> Transaction:
        """A signed CDRequest of participant ``peer``, its window relative to now."""
        now = int(time.time() * 1000)
        body = CDRequest(
            kind=kind,
            device=device,
            arrival_ms=now + arrive_in_ms,
            departure_ms=now + arrive_in_ms + stay_ms,
            energy_wh=energy_wh,
            max_rate_w=max_rate_w,
            # No limit unless one is given: any price for a charge, any for a discharge.
            limit_price_mc_per_kwh=(NO_CHARGE_LIMIT if kind == 1 else 0)
            if limit_price is None
            else limit_price,
            meter_id=meter_id or cd_meter_id(peer, Device(device)),
        )
        return sign_tx(self.chain.peer(peer), self.chain.chain_id, nonce, body)


@contextlib.asynccontextmanager
async def live_node(directory: Path, **params: Any) -> AsyncIterator[LiveNode]:
    """Start a solo validator and its API; ``params`` are further ChainParams fields."""
    settings: dict[str, Any] = {
        "schedule_interval_ms": INTERVAL_MS,
        "schedule_interval_minutes": INTERVAL_MINUTES,
        **params,
    }
    chain = make_chain(
        directory,
        block_interval_ms=50,
        genesis_changes=lambda bundle: {"meters": cd_meters(bundle)},
        **settings,
    )
    node = Node(load_config(chain.config_path()))
    runner = web.AppRunner(build_app(node), access_log=None)
    try:
        await node.start()
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        async with aiohttp.ClientSession() as session:
            yield LiveNode(chain, node, f"http://{host}:{port}", session)
    finally:
        await runner.cleanup()
        await node.stop()


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[LiveNode]:
    async with live_node(tmp_path / "chain") as running:
        yield running
