"""The closed loop with real processes (issue 14 items 1-2, ADR 0028).

Four PBFT validators (``gridchain node run``), the simulator (``gridchain meterbridge simulate``
with an OCPP charge point and its EV, whose Modbus meter measures what the charger delivers)
and one meter bridge (``gridchain meterbridge run`` with a ``[devices]`` section: its OCPP
central system and the device controller).  The test sends an EV's charge request; the chain
decides its rates interval by interval; the bridge installs each decision on the charger as an
OCPP 1.6J charging profile over the websocket; the charger draws that power; its meter's signed
readings come back on chain.  Everything the test checks it reads from the validators' APIs,
over Modbus from the meter, and from the bridge's log.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from gridchain.genesis.builder import GenesisBundle
from gridchain.meterbridge.config import TcpBus
from gridchain.meterbridge.metrics import BridgeMetrics
from gridchain.meterbridge.modbus import BusClient, MeterUnavailable
from gridchain.meterbridge.profiles import load_profile
from gridchain.protocol.crypto import SigningKey
from gridchain.protocol.tx import CDKind, CDRequest, Device, sign_tx
from tests.procs import (
    Chain,
    GridchainChild,
    NodeProcess,
    free_test_port,
    http_get,
    make_chain,
    node_for,
    submit,
    wait_committed,
)

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("devices_loop")]

N = 4
BRIDGE = SigningKey(b"\x09" * 32)
INTERVAL_MS = 3_000
SAFE_W = 1_000
SETTLEMENT_GRACE_MS = 2_000
FAILSAFE_S = 3.0
CHARGER = "cp-b"
METER = "ev-b"
SLAVE = 3
#: Participant 0's battery inverter, which measures itself (generic-battery-inverter).
BATTERY = "batt-a"
BATTERY_SLAVE = 5
#: A reading whose tick lies this far inside an interval was read inside it: the charger
#: switches at the edge (within a physics tick), the bridge reads a little after its tick
#: (more under load, hence the larger margin before the end).
EDGE_AFTER_START_MS = 300
EDGE_BEFORE_END_MS = 800


@dataclass
class Loop:
    chain: Chain
    nodes: list[NodeProcess]
    bridge_log: Path
    sim_port: int


def device_meters(bundle: GenesisBundle) -> dict[str, Any]:
    """Participant 1's EV meter (behind its charger) and participant 0's battery inverter."""

    def meter(meter_id: str, owner: int, meter_type: str, profile: str) -> dict[str, Any]:
        return {
            "meter_id": meter_id,
            "owner": bundle.participants[owner].address,
            "meter_type": meter_type,
            "bridge_public_key": BRIDGE.public_key.hex(),
            "profile": profile,
        }

    return {
        "meters": [
            meter(METER, 1, "EV", "eastron-sdm120"),
            meter(BATTERY, 0, "Battery", "generic-battery-inverter"),
        ]
    }


def bridge_config(
    path: Path, node_url: str, sim_port: int, csms_port: int, owners: tuple[str, str]
) -> None:
    path.write_text(
        f"""
name = "peer-b"
node_url = "{node_url}"
data_dir = "bridge-data"
interval_s = 1
key_seed_hex = "{BRIDGE.seed.hex()}"

[[buses]]
name = "sim"
kind = "rtu-over-tcp"
host = "127.0.0.1"
port = {sim_port}
timeout_s = 0.5

[[meters]]
meter_id = "{METER}"
bus = "sim"
slave_id = {SLAVE}
profile = "eastron-sdm120"

[[meters]]
meter_id = "{BATTERY}"
bus = "sim"
slave_id = {BATTERY_SLAVE}
profile = "generic-battery-inverter"

[devices]
csms_port = {csms_port}
poll_s = 0.5
failsafe_after_s = {FAILSAFE_S}

[[devices.chargers]]
charge_point_id = "{CHARGER}"
owner = "{owners[1]}"
safe_limit_w = {SAFE_W}
meter_id = "{METER}"

[[devices.inverters]]
name = "{BATTERY}"
owner = "{owners[0]}"
bus = "sim"
slave_id = {BATTERY_SLAVE}
profile = "generic-battery-inverter"
safe_setpoint_w = 0
""",
        encoding="utf-8",
    )


def wait_for(what: str, check: Any, timeout_s: float, logs: list[Path]) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    tails = "\n".join(f"--- {p}\n{p.read_text(errors='replace')[-2000:]}" for p in logs)
    raise AssertionError(f"not reached within {timeout_s} s: {what}\n{tails}")


@pytest.fixture
def loop(tmp_path: Path) -> Iterator[Loop]:
    chain = make_chain(
        tmp_path / "chain",
        validators=N,
        engine="pbft",
        block_interval_ms=200,
        genesis_changes=device_meters,
        schedule_interval_ms=INTERVAL_MS,
        # readings arrive every second: an interval settles 2 s after it ends (ADR 0030)
        settlement_grace_ms=SETTLEMENT_GRACE_MS,
    )
    nodes = [node_for(chain, i) for i in range(N)]
    children: list[GridchainChild] = []
    try:
        for node in nodes:
            node.start(wait=False)
        for node in nodes:
            node.wait_healthy()
        sim_port, csms_port = free_test_port(), free_test_port()
        owners = (chain.bundle.participants[0].address, chain.bundle.participants[1].address)
        children.append(
            GridchainChild(
                [
                    "meterbridge",
                    "simulate",
                    "--tcp",
                    f"127.0.0.1:{sim_port}",
                    "--csms",
                    f"ws://127.0.0.1:{csms_port}",
                    "--charger",
                    f"{CHARGER}:{SLAVE}",
                    "--ev",
                    f"{CHARGER}:60:0.2:7.4",
                    "--meter-values-s",
                    "1",
                    "--inverter",
                    f"{BATTERY_SLAVE}:10:0.2",
                ],
                tmp_path / "simulator.log",
            )
        )
        config = tmp_path / "bridge.toml"
        bridge_config(config, chain.api_url(0), sim_port, csms_port, owners)
        bridge_log = tmp_path / "bridge.log"
        children.append(GridchainChild(["meterbridge", "run", "--config", str(config)], bridge_log))
        logs = [tmp_path / "simulator.log", bridge_log]
        wait_for(
            "the charger connected and took its safe profile",
            lambda: (
                any(e.get("event") == "charger_schedule_installed" for e in events(bridge_log))
                or any(e.get("event") == "charger_connected" for e in events(bridge_log))
            ),
            60,
            logs,
        )
        yield Loop(chain, nodes, bridge_log, sim_port)
    finally:
        for child in reversed(children):
            child.stop()
        for node in nodes:
            if node.proc is not None:
                node.terminate()


def events(log: Path) -> list[dict[str, Any]]:
    out = []
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out


def send_request(
    chain: Chain,
    departure_in_ms: int,
    energy_wh: int,
    *,
    peer: int = 1,
    device: Device = Device.EV,
    max_rate_w: int = 7_000,
) -> str:
    now = time.time_ns() // 1_000_000
    request = CDRequest(
        int(CDKind.CHARGE),
        int(device),
        now,
        now + departure_in_ms,
        energy_wh,
        max_rate_w,
        2**64 - 1,  # no limit: any interval's price
        METER if device is Device.EV else BATTERY,
    )
    tx = sign_tx(chain.peer(peer), chain.chain_id, 0, request)
    status, body = submit(chain.api_url(peer), tx)
    assert status in (200, 202), body
    wait_committed(chain.api_url(peer), tx.hash().hex())
    return tx.hash().hex()


def decided(url: str, request_id: str) -> list[tuple[int, int, int, int]]:
    """(interval, start, end, rate) of every decision with a rate for the request, oldest first."""
    status, body = http_get(f"{url}/v1/schedule?limit=100")
    assert status == 200, body
    out = []
    for d in body["decisions"]:
        for e in d["entries"]:
            if e["request_id"] == request_id:
                out.append((d["interval"], d["start_ms"], d["end_ms"], e["rate_w"]))
    return sorted(out)


def cd_receipts(url: str, request_id: str) -> list[dict[str, Any]]:
    status, body = http_get(f"{url}/v1/cd/{request_id}/receipts")
    assert status == 200, body
    result: list[dict[str, Any]] = body["receipts"]
    return result


def readings(url: str, meter_id: str = METER) -> list[dict[str, Any]]:
    status, body = http_get(f"{url}/v1/meters/{meter_id}/readings?limit=1000")
    assert status == 200, body
    result: list[dict[str, Any]] = body["readings"]
    return result


@pytest.fixture
async def meter_bus(loop: Loop) -> AsyncIterator[BusClient]:
    """The test's own Modbus master on the simulator: what the charger's meter shows now."""
    client = BusClient(
        TcpBus(name="probe", kind="rtu-over-tcp", host="127.0.0.1", port=loop.sim_port),
        BridgeMetrics(),
    )
    yield client
    await client.close()


async def meter_power(bus: BusClient) -> int | None:
    try:
        return (await bus.read_meter(METER, SLAVE, load_profile("eastron-sdm120"))).power_w
    except MeterUnavailable:
        return None


def covering(plan: list[tuple[int, int, int, int]], t_ms: int) -> int | None:
    """The request's rate at ``t_ms`` if ``t_ms`` is well inside one of the spans in which the
    device had its interval's rate (``plan``'s starts moved by :func:`in_effect`)."""
    for _, start, end, rate in plan:
        if start + EDGE_AFTER_START_MS <= t_ms <= end - EDGE_BEFORE_END_MS:
            return rate
    return None


def _event_ms(event: dict[str, Any]) -> int:
    stamp = datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00"))
    return round(stamp.timestamp() * 1000)


def in_effect(
    plan: list[tuple[int, int, int, int]], delivered_ms: dict[tuple[int, int, int], int]
) -> list[tuple[int, int, int, int]]:
    """``plan`` with each interval starting when its rate took effect on the device: at the
    interval's start, or later if the bridge delivered it later (``delivered_ms``, from its
    log).  A decision can reach the bridge after its interval began (the first interval of a
    request committed inside it, or a block late under load); until then the device keeps the
    value it had, which is what its meter reads."""
    out = []
    for interval, start, end, rate in plan:
        delivered = delivered_ms.get((start, end, rate))
        assert delivered is not None, ("never delivered", interval, start, end, rate)
        out.append((interval, max(start, delivered), end, rate))
    return out


def charger_deliveries(log: Path) -> dict[tuple[int, int, int], int]:
    """When each (start, end, rate) period first reached the charger in an accepted profile."""
    first: dict[tuple[int, int, int], int] = {}
    for e in events(log):
        if e.get("event") == "charger_schedule_installed":
            for start, end, rate in e["periods"]:
                first.setdefault((start, end, rate), _event_ms(e))
    return first


def inverter_deliveries(
    log: Path, inverter: str, plan: list[tuple[int, int, int, int]]
) -> dict[tuple[int, int, int], int]:
    """When the inverter got each planned interval's rate: the setpoint written last before the
    interval's judged end, if it is that rate (the bridge logs a write only when the value
    changes, so an interval with its predecessor's rate took effect when that one did)."""
    writes = [
        (_event_ms(e), e["setpoint_w"])
        for e in events(log)
        if e.get("event") == "setpoint_written" and e.get("inverter") == inverter
    ]
    out: dict[tuple[int, int, int], int] = {}
    for _, start, end, rate in plan:
        before = [(t, w) for t, w in writes if t <= end - EDGE_BEFORE_END_MS]
        if before and before[-1][1] == rate:
            out[(start, end, rate)] = before[-1][0]
    return out


def test_charge_request_to_profile_to_power_to_meter_to_chain(loop: Loop) -> None:
    chain, logs = loop.chain, [loop.bridge_log]
    battery_request = send_request(
        chain, 30_000, 2_000, peer=0, device=Device.BATTERY, max_rate_w=5_000
    )
    request_id = send_request(chain, departure_in_ms=30_000, energy_wh=4_000)
    window_end = time.time_ns() // 1_000_000 + 30_000

    def finished() -> bool:
        status, body = http_get(f"{chain.api_url(0)}/v1/cd/{request_id}")
        if status != 200 or body["status"] == "open":
            return False
        # readings a few seconds past the last decided interval, committed
        return all(
            (last := readings(chain.api_url(0), meter_id))
            and last[-1]["interval_end_ms"] > window_end + 3_000
            for meter_id in (METER, BATTERY)
        )

    wait_for("the request is done and its readings are on chain", finished, 120, logs)

    # the same decisions and the same readings on every validator
    plans = [decided(chain.api_url(i), request_id) for i in range(N)]
    assert all(p == plans[0] for p in plans), plans
    plan = plans[0]
    assert len(plan) >= 3, plan
    chains = [readings(chain.api_url(i)) for i in range(N)]
    assert all([r["hash"] for r in c] == [r["hash"] for r in chains[0]] for c in chains)
    on_chain = [r for r in chains[0] if r["status"] == "ok"]

    # every decision reached the charger as (part of) an accepted OCPP profile
    installed = charger_deliveries(loop.bridge_log)
    for _, start, end, rate in plan:
        assert (start, end, rate) in installed, (start, end, rate)

    # the meter saw the charger draw each interval's rate, and the safe limit once the
    # schedule ran out
    effective = in_effect(plan, installed)
    inside = [(r, covering(effective, r["interval_end_ms"])) for r in on_chain]
    scheduled = [(r, rate) for r, rate in inside if rate is not None]
    assert len(scheduled) >= 3
    for reading, rate in scheduled:
        assert reading["power_w"] == rate, (reading, plan)
    after = [r for r in on_chain if r["interval_end_ms"] > plan[-1][2] + 1_000]
    assert after
    assert all(r["power_w"] == SAFE_W for r in after), after

    # and its energy registers grew by what that power delivers (speed 1: wall time)
    first, last = scheduled[0][0], scheduled[-1][0]
    t0, t1 = first["interval_end_ms"], last["interval_end_ms"]
    expected_wh = (
        sum(rate * max(0, min(end, t1) - max(start, t0)) for _, start, end, rate in plan)
        / 3_600_000
    )
    measured_wh = last["import_wh"] - first["import_wh"]
    print(
        f"{len(plan)} decided intervals {[(i, rate) for i, _, _, rate in plan]}; "
        f"{len(scheduled)} readings at the scheduled power, {len(after)} at the safe limit; "
        f"meter {measured_wh} Wh, schedule {expected_wh:.1f} Wh"
    )
    # endpoints: each read is a few ms to a few hundred ms late, each edge switched by a tick
    assert abs(measured_wh - expected_wh) <= 3 + 0.02 * expected_wh, (measured_wh, expected_wh)

    # settlement: one receipt per decided interval, the same on every validator; the energy is
    # the charger's meter's, paid by the owner at the interval's price (ADR 0030)
    wait_for(
        "every decided interval of the request is settled on every validator",
        lambda: all(len(cd_receipts(chain.api_url(i), request_id)) == len(plan) for i in range(N)),
        60,
        logs,
    )
    receipts = [cd_receipts(chain.api_url(i), request_id) for i in range(N)]
    assert all(r == receipts[0] for r in receipts), receipts
    owner = chain.bundle.participants[1].address
    for receipt, (interval, start, end, rate) in zip(receipts[0], plan, strict=True):
        assert (receipt["interval"], receipt["start_ms"], receipt["end_ms"]) == (
            interval,
            start,
            end,
        )
        assert (receipt["owner"], receipt["meter_id"], receipt["kind"]) == (owner, METER, "charge")
        assert receipt["setpoint_w"] == rate
        assert receipt["scheduled_wh"] == rate * INTERVAL_MS // 3_600_000
        assert receipt["amount_mc"] == receipt["price_mc_per_kwh"] * receipt["metered_wh"] // 1000
        assert receipt["paid_mc"] == receipt["amount_mc"]  # the owner could pay
        # the meter's reads lag the window's edges by under a second: within the tolerance
        assert receipt["penalty_mc"] == 0, receipt
    metered = sum(r["metered_wh"] for r in receipts[0])
    paid = sum(r["paid_mc"] for r in receipts[0])
    scheduled_wh = sum(r["scheduled_wh"] for r in receipts[0])
    assert metered > 0
    assert paid > 0
    # the plan's energy before each receipt rounds its interval down to whole Wh; the windows'
    # reads are up to a second off their edges (a fraction of a Wh at these rates)
    exact_wh = sum(rate * (end - start) for _, start, end, rate in plan) / 3_600_000
    assert abs(metered - exact_wh) <= 3 + 0.02 * exact_wh, (metered, exact_wh)
    print(
        f"receipts: {len(receipts[0])} intervals, metered {metered} Wh of {scheduled_wh} Wh "
        f"scheduled, paid {paid} mc"
    )

    # the battery: the same decisions went to its inverter as a Modbus setpoint, and its own
    # meter, read by the same bridge, shows it charging at each interval's rate, and idle after
    battery_plans = [decided(chain.api_url(i), battery_request) for i in range(N)]
    assert all(p == battery_plans[0] for p in battery_plans)
    battery_plan = battery_plans[0]
    assert len(battery_plan) >= 3, battery_plan
    battery = [r for r in readings(chain.api_url(0), BATTERY) if r["status"] == "ok"]
    battery_effective = in_effect(
        battery_plan, inverter_deliveries(loop.bridge_log, BATTERY, battery_plan)
    )
    maybe = [(r, covering(battery_effective, r["interval_end_ms"])) for r in battery]
    at_rate = [(r, rate) for r, rate in maybe if rate is not None]
    assert len(at_rate) >= 3
    for reading, rate in at_rate:
        assert reading["power_w"] == rate, (reading, battery_plan)
    idle = [r for r in battery if r["interval_end_ms"] > battery_plan[-1][2] + 1_000]
    assert idle
    assert all(r["power_w"] == 0 for r in idle), idle
    written = {
        e["setpoint_w"] for e in events(loop.bridge_log) if e.get("event") == "setpoint_written"
    }
    assert {rate for *_, rate in battery_plan} <= written
    print(
        f"battery: {len(battery_plan)} decided intervals "
        f"{[(i, rate) for i, _, _, rate in battery_plan]}; {len(at_rate)} readings at the "
        f"scheduled power, {len(idle)} idle"
    )


async def test_failsafe_when_the_chain_is_unreachable_then_resume(
    loop: Loop, meter_bus: BusClient
) -> None:
    import asyncio

    chain = loop.chain
    request_id = send_request(chain, departure_in_ms=150_000, energy_wh=30_000)

    async def following_schedule() -> tuple[bool, int | None]:
        now = time.time_ns() // 1_000_000
        rate = covering(decided(chain.api_url(1), request_id), now)
        power = await meter_power(meter_bus)
        return rate is not None and power == rate and rate != SAFE_W, power

    async def until(what: str, check: Any, timeout_s: float) -> float:
        start = time.monotonic()
        while time.monotonic() - start < timeout_s:
            if await check():
                return time.monotonic() - start
            await asyncio.sleep(0.1)
        tail = loop.bridge_log.read_text(errors="replace")[-3000:]
        raise AssertionError(f"not reached within {timeout_s} s: {what}\n{tail}")

    async def on_schedule() -> bool:
        return (await following_schedule())[0]

    async def at_safe_limit() -> bool:
        return await meter_power(meter_bus) == SAFE_W

    await until("the charger follows the schedule", on_schedule, 60)
    stopping = time.monotonic()
    loop.nodes[0].terminate()  # the bridge's node: the chain is unreachable for it
    stopped = time.monotonic() - stopping
    elapsed = await until("the charger is at its safe limit", at_safe_limit, 60)
    print(
        f"safe limit {stopped + elapsed:.2f} s after SIGTERM to the node, {elapsed:.2f} s after "
        f"it exited (failsafe_after_s {FAILSAFE_S}, poll_s 0.5)"
    )
    # The safe limit comes first from whichever bound is shorter: the charger's schedule
    # profile running out at the end of the last decided interval, or the controller clearing
    # it failsafe_after_s after the node's last answer.  The controller's fail-safe follows.
    wait_for(
        "the controller's fail-safe",
        lambda: any(e.get("event") == "failsafe_on" for e in events(loop.bridge_log)),
        30,
        [loop.bridge_log],
    )
    # it stays there while the node is down (the decisions it holds are not used any more)
    await asyncio.sleep(1)
    assert await meter_power(meter_bus) == SAFE_W
    loop.nodes[0].start()
    await until("the charger follows the schedule again", on_schedule, 90)
    assert any(e.get("event") == "failsafe_off" for e in events(loop.bridge_log))
