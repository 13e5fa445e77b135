"""The agent's API on a fake node: bad input is a typed 4xx and sends and logs nothing."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from aiohttp.test_utils import TestClient, TestServer

from gridchain.agent.api import make_app
from gridchain.agent.config import AgentConfig, Limits
from gridchain.agent.runner import Agent
from gridchain.api.client import NodeClient
from gridchain.api.models import Markets
from gridchain.protocol.crypto import SigningKey
from gridchain.protocol.tx import PlaceOrder, Transaction

NOW_MS = 1_780_000_000_000
SLOT_MS = 900_000


class FakeNode:
    """The node calls the agent makes, answered from memory; records what was submitted."""

    def __init__(self) -> None:
        self.submitted: list[Transaction] = []

    async def markets(self) -> Markets:
        current = NOW_MS // SLOT_MS
        return Markets(
            markets=["day_ahead", "intraday"], slot_length_ms=SLOT_MS,
            gate_closure_ms=3_600_000, day_ahead_gate_closure_ms=3_600_000,
            order_horizon_ms=2 * 86_400_000, matching_rule="price_time",
            adbev_price_weight=10, adbev_time_weight=1, iceberg_execution="standard",
            iceberg_waiting_limit_ms=0, now_ms=NOW_MS, current_slot=current,
            first_open_slot={"day_ahead": current + 5, "intraday": current + 5},
        )  # fmt: skip

    async def status(self) -> Any:
        return SimpleNamespace(chain_id=b"\x07" * 32)

    async def account(self, address: str) -> Any:
        return SimpleNamespace(pending_nonce=len(self.submitted))

    async def submit_tx(self, tx: Transaction) -> str:
        self.submitted.append(tx)
        return tx.hash().hex()

    async def wait_committed(self, tx_hash: str, *, timeout_s: float) -> Any:
        return SimpleNamespace(status="committed", height=1, index=0)

    async def orders(self, address: str) -> list[Any]:
        return []

    async def trades(self, *, address: str) -> list[Any]:
        return []


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[TestClient[Any, Any], FakeNode, Agent]]:
    config = AgentConfig(
        name="peer-a",
        node_url="http://127.0.0.1:1",
        wallet=tmp_path / "w.json",
        history={"file": tmp_path / "h.csv"},
        limits=Limits(max_sell_wh_per_slot=500, max_buy_wh_per_slot=300,
                      min_sell_price_mc_per_kwh=100_000, max_buy_price_mc_per_kwh=300_000),
    )  # fmt: skip
    node = FakeNode()
    key = SigningKey.generate()
    agent = Agent(config, key, "gc1" + "00" * 24, cast(NodeClient, node), now_ms=lambda: NOW_MS)
    async with TestClient(TestServer(make_app(agent))) as client:
        yield client, node, agent


FIRST_OPEN = NOW_MS // SLOT_MS + 5
GOOD = {"side": "sell", "slot": FIRST_OPEN + 1, "quantity_wh": 200, "price_mc_per_kwh": 150_000}


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"slot": "soon"}, 400, "bad_request"),  # wrong type
        ({"quantity_wh": 1.5}, 400, "bad_request"),  # a float is not Wh
        ({"quantity_wh": "200"}, 400, "bad_request"),  # no coercion from strings
        ({"price_mc_per_kwh": True}, 400, "bad_request"),
        ({"side": "give"}, 400, "bad_request"),
        ({"quantity_wh": 0}, 400, "bad_request"),
        ({"device": "Toaster"}, 400, "bad_request"),
        ({"note": "hi"}, 400, "bad_request"),  # unknown field
        ({"quantity_wh": 501}, 422, "over_user_limit"),  # a sell beyond the user's limit
        ({"price_mc_per_kwh": 99_999}, 422, "over_user_limit"),  # below the minimum price
        ({"side": "buy", "quantity_wh": 301}, 422, "over_user_limit"),
        ({"side": "buy", "price_mc_per_kwh": 300_001}, 422, "over_user_limit"),
        ({"slot": FIRST_OPEN - 1}, 409, "slot_closed"),  # gate closed: an expired slot
        ({"slot": FIRST_OPEN + 10_000}, 409, "slot_closed"),  # beyond the order horizon
    ],
)
async def test_bad_orders_are_refused_and_change_nothing(
    served: tuple[TestClient[Any, Any], FakeNode, Agent],
    change: dict[str, object],
    status: int,
    code: str,
) -> None:
    client, node, agent = served
    resp = await client.post("/v1/orders", json={**GOOD, **change})
    body = await resp.json()
    assert (resp.status, body["error"]["code"]) == (status, code)
    assert body["error"]["message"]
    assert node.submitted == []
    assert agent.actions == []
    assert agent.placed_wh == {}


@pytest.mark.parametrize(
    "raw", [b"{not json", b"[]", b"null", json.dumps({"side": "sell"}).encode(), b"x" * 5000]
)
async def test_malformed_bodies_are_400(
    served: tuple[TestClient[Any, Any], FakeNode, Agent], raw: bytes
) -> None:
    client, node, agent = served
    resp = await client.post("/v1/orders", data=raw, headers={"Content-Type": "application/json"})
    assert resp.status in (400, 413)
    assert (await resp.json())["error"]["code"] in ("bad_request", "payload_too_large")
    assert node.submitted == []
    assert agent.actions == []


async def test_a_good_order_is_signed_sent_and_logged_and_counts_against_the_limit(
    served: tuple[TestClient[Any, Any], FakeNode, Agent],
) -> None:
    client, node, _agent = served
    resp = await client.post("/v1/orders", json=GOOD)
    assert resp.status == 201, await resp.text()
    action = await resp.json()
    assert (action["origin"], action["status"], action["device"]) == ("user", "committed", "PV")
    [tx] = node.submitted
    assert isinstance(tx.body, PlaceOrder)
    assert (tx.body.slot, tx.body.quantity_wh, tx.body.price_mc_per_kwh) == (
        GOOD["slot"], 200, 150_000,
    )  # fmt: skip
    assert action["tx_hash"] == tx.hash().hex()
    # 200 placed; 301 more would make 501 > 500 in this slot
    resp = await client.post("/v1/orders", json={**GOOD, "quantity_wh": 301})
    assert (resp.status, (await resp.json())["error"]["code"]) == (422, "over_user_limit")
    assert len(node.submitted) == 1
    resp = await client.get("/fetchTransactionData")
    data = await resp.json()
    assert [a["tx_hash"] for a in data["actions"]] == [tx.hash().hex()]


async def test_reads_before_the_first_cycle(
    served: tuple[TestClient[Any, Any], FakeNode, Agent],
) -> None:
    client, _, _ = served
    health = await (await client.get("/agent/health")).json()
    assert health["status"] == "starting"
    assert health["plan_version"] is None
    for path in ("/fetchForecastData", "/fetchOptimizationsData"):
        resp = await client.get(path)
        assert (resp.status, (await resp.json())["error"]["code"]) == (404, "not_found")
    resp = await client.get("/fetchOptimizationsData?version=x")
    assert (resp.status, (await resp.json())["error"]["code"]) == (400, "bad_request")
    resp = await client.get("/fetchHistoricalData?from_ms=-1")
    assert resp.status == 400
    resp = await client.get("/nowhere")
    assert (resp.status, (await resp.json())["error"]["code"]) == (404, "not_found")
