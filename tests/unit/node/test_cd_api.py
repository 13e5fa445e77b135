"""The C&D routes of the node API: /v1/schedule, /v1/cd, /v1/cd/{id} and the schedule event.

Why: EV chargers, battery controllers and dashboards read their setpoints only through these
routes and the websocket; a setpoint with the wrong sign, a window in the wrong block time or
a benefit rounded by a JSON client would move real energy the wrong way.  Refusals must be
typed 4xx answers that write nothing, like every other route.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path
from typing import Any

import pytest

from gridchain.api.openapi import openapi_document
from gridchain.node.api import build_app
from gridchain.protocol.address import format_address
from tests.unit.node.conftest import INTERVAL_MINUTES, INTERVAL_MS, LiveNode, live_node


async def _wait_for(
    live: LiveNode, path: str, done: Any, timeout_s: float = 15.0
) -> dict[str, Any]:
    """Poll ``path`` until ``done(body)``; return that body."""
    deadline = time.monotonic() + timeout_s
    while True:
        status, body = await live.get(path)
        assert status == 200, body
        if done(body):
            result: dict[str, Any] = body
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} did not reach the expected state: {body}")
        await asyncio.sleep(0.1)


CD_FIELDS = {
    "id",
    "owner",
    "kind",
    "device",
    "arrival_ms",
    "departure_ms",
    "energy_wh",
    "max_rate_w",
    "limit_price_mc_per_kwh",
    "meter_id",
    "first_interval",
    "end_interval",
    "window_start_ms",
    "window_end_ms",
    "cap_units",
    "delivered_units",
    "remaining_units",
    "delivered_wh",
    "remaining_wh",
    "submitted_height",
    "status",
}


async def test_requests_are_served_scheduled_and_completed(live: LiveNode) -> None:
    genesis_ms = live.chain.bundle.genesis.genesis_time_ms
    charge = live.cd_tx(0, 0, energy_wh=1000, max_rate_w=3000, limit_price=400_000)
    discharge = live.cd_tx(1, 0, kind=2, device=1, energy_wh=500, max_rate_w=2000)
    for tx in (charge, discharge):
        status, body = await live.post_tx(tx)
        assert status == 202, body
    committed = await live.wait_committed(charge.hash().hex())
    await live.wait_committed(discharge.hash().hex())

    status, record = await live.get(f"/v1/cd/{charge.hash().hex()}")
    assert status == 200
    assert set(record) == CD_FIELDS
    assert record["id"] == charge.hash().hex()
    assert record["owner"] == format_address(live.chain.address(0))
    assert (record["kind"], record["device"]) == ("charge", "EV")
    assert (record["energy_wh"], record["max_rate_w"]) == (1000, 3000)
    assert record["limit_price_mc_per_kwh"] == 400_000
    assert record["submitted_height"] == committed["height"]
    # 1000 Wh in 10-minute intervals is 6000 W-intervals.
    assert record["cap_units"] == 60 * 1000 // INTERVAL_MINUTES
    assert record["status"] in ("open", "complete")
    first, end = record["first_interval"], record["end_interval"]
    assert 0 < first < end
    assert record["window_start_ms"] == genesis_ms + first * INTERVAL_MS
    assert record["window_end_ms"] == genesis_ms + end * INTERVAL_MS
    assert record["arrival_ms"] <= record["window_start_ms"]
    assert record["window_end_ms"] <= record["departure_ms"]
    assert record["delivered_wh"] + record["remaining_wh"] == 1000

    # The node decides every interval of the window by itself; the charge completes.
    done = await _wait_for(live, f"/v1/cd/{charge.hash().hex()}", lambda r: r["status"] != "open")
    assert done["status"] == "complete"
    assert (done["delivered_units"], done["remaining_units"]) == (done["cap_units"], 0)
    assert (done["delivered_wh"], done["remaining_wh"]) == (1000, 0)
    gave = await _wait_for(
        live, f"/v1/cd/{discharge.hash().hex()}", lambda r: r["status"] != "open"
    )
    assert (gave["kind"], gave["device"]) == ("discharge", "Battery")
    # Taking less than offered is allowed: the scheduler may leave the battery alone.
    assert gave["status"] in ("complete", "ended")
    assert gave["delivered_units"] <= gave["cap_units"]

    status, schedule = await live.get("/v1/schedule")
    assert status == 200
    assert schedule["open_requests"] == 0
    assert schedule["interval_ms"] == INTERVAL_MS
    assert schedule["interval_minutes"] == INTERVAL_MINUTES
    decisions = schedule["decisions"]
    assert decisions, schedule
    intervals = [d["interval"] for d in decisions]
    assert intervals == sorted(intervals, reverse=True)  # newest first
    assert schedule["next_interval"] == intervals[0] + 1
    charged = 0
    for d in decisions:
        assert set(d) == {
            "interval",
            "start_ms",
            "end_ms",
            "height",
            "base_load_w",
            "load_w",
            "benefit",
            "entries",
            "capacity_w",
            "over_capacity",
        }
        assert (d["capacity_w"], d["over_capacity"]) == (None, False)  # no limit in genesis
        assert d["start_ms"] == genesis_ms + d["interval"] * INTERVAL_MS
        assert d["end_ms"] == d["start_ms"] + INTERVAL_MS
        assert isinstance(d["benefit"], str)
        assert d["benefit"].isdigit()
        assert d["load_w"] == d["base_load_w"] + sum(e["rate_w"] for e in d["entries"])
        # The block that decides interval j lies in interval j - 1.
        _, block = await live.get(f"/v1/blocks/{d['height']}")
        assert (block["header"]["timestamp_ms"] - genesis_ms) // INTERVAL_MS == d["interval"] - 1
        assert int(d["benefit"]) == block["header"]["benefit"]
        for e in d["entries"]:
            assert set(e) == {"request_id", "owner", "kind", "device", "rate_w", "meter_id"}
            if e["request_id"] == charge.hash().hex():
                assert (e["kind"], e["device"]) == ("charge", "EV")
                assert e["meter_id"] == record["meter_id"]  # a charger picks its rate by it
                assert e["owner"] == format_address(live.chain.address(0))
                assert 0 <= e["rate_w"] <= 3000
                charged += e["rate_w"]
            else:
                assert e["request_id"] == discharge.hash().hex()
                assert (e["kind"], e["device"]) == ("discharge", "Battery")
                assert -2000 <= e["rate_w"] <= 0
    assert charged == done["cap_units"]

    # One interval's decision, by itself.
    newest = decisions[0]
    status, one = await live.get(f"/v1/schedule?interval={newest['interval']}")
    assert status == 200
    assert one["decisions"] == [newest]
    status, limited = await live.get("/v1/schedule?limit=1")
    assert status == 200
    assert limited["decisions"] == [newest]

    # Lists: by owner and status, newest first.
    owner = format_address(live.chain.address(0))
    status, mine = await live.get(f"/v1/cd?owner={owner}")
    assert status == 200
    assert mine["owner"] == owner
    assert [r["id"] for r in mine["requests"]] == [charge.hash().hex()]
    assert mine["requests"][0] == done
    _, complete = await live.get(f"/v1/cd?owner={owner}&status=complete")
    assert [r["id"] for r in complete["requests"]] == [charge.hash().hex()]
    _, still_open = await live.get(f"/v1/cd?owner={owner}&status=open")
    assert still_open["requests"] == []
    other = format_address(live.chain.address(2))
    _, none = await live.get(f"/v1/cd?owner={other}")
    assert none["requests"] == []
    _, everyone = await live.get("/v1/cd")
    assert everyone["owner"] is None
    assert {r["id"] for r in everyone["requests"]} == {
        charge.hash().hex(),
        discharge.hash().hex(),
    }
    _, one_only = await live.get("/v1/cd?limit=1")
    assert len(one_only["requests"]) == 1


async def test_websocket_sends_the_setpoints_after_their_block(live: LiveNode) -> None:
    async with live.session.ws_connect(live.url + "/v1/events") as ws:
        tx = live.cd_tx(0, 0, energy_wh=200, max_rate_w=3000)
        status, _ = await live.post_tx(tx)
        assert status == 202
        last_block: dict[str, Any] | None = None
        while True:
            msg = await asyncio.wait_for(ws.receive_json(), timeout=15)
            if msg["type"] == "block_committed":
                last_block = msg
            elif msg["type"] == "schedule":
                break
    assert last_block is not None
    assert msg["height"] == last_block["height"]  # right after its block's message
    assert set(msg) == {
        "type",
        "height",
        "interval",
        "start_ms",
        "end_ms",
        "base_load_w",
        "load_w",
        "benefit",
        "entries",
        "capacity_w",
        "over_capacity",
    }
    assert isinstance(msg["benefit"], str)
    assert msg["entries"] == [
        {
            "request_id": tx.hash().hex(),
            "owner": format_address(live.chain.address(0)),
            "kind": "charge",
            "device": "EV",
            "rate_w": msg["entries"][0]["rate_w"],
            "meter_id": "peer-a-ev",
        }
    ]
    assert msg["load_w"] == msg["base_load_w"] + msg["entries"][0]["rate_w"]
    status, schedule = await live.get(f"/v1/schedule?interval={msg['interval']}")
    assert status == 200
    (decision,) = schedule["decisions"]
    assert {k: v for k, v in msg.items() if k != "type"} == decision


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/v1/schedule?limit=0", 400, "invalid_request"),
        ("/v1/schedule?limit=101", 400, "invalid_request"),
        ("/v1/schedule?limit=ten", 400, "invalid_request"),
        ("/v1/schedule?interval=-1", 400, "invalid_request"),
        ("/v1/schedule?interval=1&limit=2", 400, "invalid_request"),
        ("/v1/schedule?interval=0", 404, "not_found"),
        ("/v1/schedule?interval=18446744073709551615", 404, "not_found"),
        ("/v1/cd/xyz", 400, "invalid_request"),
        ("/v1/cd/" + "00" * 31, 400, "invalid_request"),
        ("/v1/cd/" + "00" * 32, 404, "not_found"),
        ("/v1/cd?status=pending", 400, "invalid_request"),
        ("/v1/cd?limit=0", 400, "invalid_request"),
        ("/v1/cd?owner=gc1nope", 400, "bad_address"),
        ("/v1/cd/" + "00" * 32 + "/more", 404, "not_found"),
    ],
)
async def test_bad_reads_are_typed_errors(
    live: LiveNode, path: str, status: int, code: str
) -> None:
    got, body = await live.get(path)
    assert (got, body["error"]["code"]) == (status, code), body
    assert body["error"]["message"]


async def test_refused_requests_are_typed_and_change_nothing(live: LiveNode) -> None:
    node = live.node
    before = (node.head.height, node.state.root(), len(node.mempool))
    refused = [
        # 100 kWh at 3 kW in two or three intervals of 10 minutes: far more than 3 kW can give.
        (live.cd_tx(0, 0, energy_wh=100_000, stay_ms=3 * INTERVAL_MS + 500), 422, "cd_infeasible"),
        # Departure before the next whole interval ends: no interval to schedule in.
        (live.cd_tx(0, 0, stay_ms=INTERVAL_MS // 2), 422, "cd_window"),
        # A PV panel takes no C&D request; kind 3 does not exist.
        (live.cd_tx(0, 0, device=2), 422, "invalid_cd_request"),
        (live.cd_tx(0, 0, kind=3), 422, "invalid_cd_request"),
        (live.cd_tx(0, 0, energy_wh=0), 422, "invalid_cd_request"),
        (live.cd_tx(0, 0, max_rate_w=0), 422, "invalid_cd_request"),
        (live.cd_tx(0, 0, stay_ms=0), 422, "invalid_cd_request"),
    ]
    for tx, status, code in refused:
        got, body = await live.post_tx(tx)
        assert (got, body["error"]["code"]) == (status, code), body
    await asyncio.sleep(1.5 * INTERVAL_MS / 1000)  # an interval boundary passes: no decision
    assert (node.head.height, node.state.root(), len(node.mempool)) == before
    _, schedule = await live.get("/v1/schedule")
    assert schedule["decisions"] == []
    assert (schedule["next_interval"], schedule["open_requests"]) == (0, 0)
    _, listed = await live.get("/v1/cd")
    assert listed["requests"] == []


async def test_openapi_documents_every_route(live: LiveNode) -> None:
    app = build_app(live.node)
    served = {r.resource.canonical for r in app.router.routes() if r.resource is not None}
    document = openapi_document()
    assert served == set(document["paths"])
    for path in ("/v1/schedule", "/v1/cd", "/v1/cd/{id}"):
        assert "400" in document["paths"][path]["get"]["responses"]
    schemas = document["components"]["schemas"]
    assert set(schemas["CDRequest"]["properties"]) == CD_FIELDS
    assert schemas["Decision"]["properties"]["benefit"]["type"] == "string"
    _, served_doc = await live.get("/openapi.json")
    assert served_doc == document


async def test_receipts_are_served_per_decided_interval(tmp_path: Path) -> None:
    """With no grace period every decided interval settles in the next block past its end; no
    meter reported, so each receipt shows nothing metered and the deviation penalty."""
    async with live_node(tmp_path / "chain", settlement_grace_ms=0) as live:
        charge = live.cd_tx(0, 0, energy_wh=500, max_rate_w=3000)
        status, body = await live.post_tx(charge)
        assert status == 202, body
        rid = charge.hash().hex()
        await live.wait_committed(rid)
        await _wait_for(live, f"/v1/cd/{rid}", lambda r: r["status"] != "open")
        status, schedule = await live.get("/v1/schedule?limit=100")
        assert status == 200
        rates = {
            d["interval"]: e["rate_w"]
            for d in schedule["decisions"]
            for e in d["entries"]
            if e["request_id"] == rid
        }
        assert rates
        # Blocks come with transactions: a transfer per round until the last interval settles.
        receipts: list[dict[str, Any]] = []
        deadline = time.monotonic() + 15
        for nonce in itertools.count():
            status, body = await live.get(f"/v1/cd/{rid}/receipts")
            assert status == 200, body
            receipts = body["receipts"]
            if len(receipts) == len(rates):
                break
            assert time.monotonic() < deadline, (receipts, rates)
            await live.post_tx(live.chain.transfer(2, 1, nonce, 1))
            await asyncio.sleep(0.3)
        assert [r["interval"] for r in receipts] == sorted(rates)
        for r in receipts:
            assert r["setpoint_w"] == rates[r["interval"]]
            assert r["scheduled_wh"] == r["setpoint_w"] * INTERVAL_MS // 3_600_000
            assert (r["metered_wh"], r["metering"], r["paid_mc"]) == (0, "missing_readings", 0)
            assert r["meter_id"] == "peer-a-ev"
        status, missing = await live.get(f"/v1/cd/{'00' * 32}/receipts")
        assert status == 404, missing
