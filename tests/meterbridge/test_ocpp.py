"""The bridge's OCPP central system against simulated charge points, over real websockets.

Both ends are the ``ocpp`` library (central system and ChargePoint side) speaking OCPP-J 1.6 on
loopback; the schedule comes from a fake node's ``GET /v1/schedule``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest
from ocpp.v16 import call
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Subprotocol

from gridchain.api import models as m
from gridchain.api.client import NodeClient
from gridchain.meterbridge.config import ChargerConfig, DevicesConfig
from gridchain.meterbridge.csms import SAFE_PROFILE_ID, SCHEDULE_PROFILE_ID
from gridchain.meterbridge.devices import DeviceController
from gridchain.meterbridge.metrics import BridgeMetrics
from gridchain.meterbridge.sim_charger import ChargerModel, SimChargePoint, SimEV
from tests.meterbridge.devices_helpers import OTHER, OWNER, decision, now_ms, wait_until
from tests.meterbridge.fakenode import FakeNode
from tests.procs import free_test_port

SAFE_W = 1_000
#: Long enough that no interval ends while a test looks at it.
INTERVAL_MS = 60_000


@dataclass
class Loop:
    node: FakeNode
    controller: DeviceController
    url: str
    stop: asyncio.Event


def schedule(first_rate: int, second_rate: int, owner: str = OWNER) -> list[m.Decision]:
    """The current interval (started a second ago) and the next one, newest first."""
    start = now_ms() - 1_000
    return [
        decision(2, start + INTERVAL_MS, start + 2 * INTERVAL_MS, [(owner, "EV", second_rate)]),
        decision(1, start, start + INTERVAL_MS, [(owner, "EV", first_rate)]),
    ]


@asynccontextmanager
async def controller_loop(
    chargers: list[ChargerConfig], *, failsafe_after_s: float = 30.0
) -> AsyncIterator[Loop]:
    node = FakeNode()
    await node.start(free_test_port())
    config = DevicesConfig(
        csms_port=free_test_port(),
        poll_s=0.2,
        failsafe_after_s=failsafe_after_s,
        call_timeout_s=5,
        chargers=chargers,
    )
    stop = asyncio.Event()
    async with NodeClient(node.url) as client:
        controller = DeviceController(config, client, {}, BridgeMetrics())
        task = asyncio.ensure_future(controller.run(stop))
        await wait_until("the central system listens", lambda: controller.csms.port is not None)
        try:
            yield Loop(node, controller, f"ws://127.0.0.1:{controller.csms.port}", stop)
        finally:
            stop.set()
            await task
            await node.stop()


@asynccontextmanager
async def charge_point(
    loop: Loop,
    charge_point_id: str,
    *,
    refuse: bool = False,
    ev: SimEV | None = None,
    auth_key: str | None = None,
) -> AsyncIterator[SimChargePoint]:
    model = ChargerModel(ev=ev or SimEV(capacity_wh=60_000, soc=0.5, max_power_w=11_000))
    cp = SimChargePoint(
        charge_point_id,
        loop.url,
        model,
        sim_now_ms=now_ms,
        refuse_profiles=refuse,
        auth_key=auth_key,
        meter_values_s=0.2,
        tick_s=0.05,
        reconnect_s=0.1,
    )
    stop = asyncio.Event()
    task = asyncio.ensure_future(cp.run(stop))
    try:
        yield cp
    finally:
        stop.set()
        await task


def charger(cp_id: str = "cp1", owner: str = OWNER) -> ChargerConfig:
    return ChargerConfig(charge_point_id=cp_id, owner=owner, safe_limit_w=SAFE_W)


async def test_boot_status_transaction_meter_values_and_the_interval_profiles() -> None:
    async with controller_loop([charger()]) as loop:
        loop.node.decisions = schedule(3_000, 5_000)
        async with charge_point(loop, "cp1") as cp:
            status = loop.controller.csms.status["cp1"]
            await wait_until(
                "the EV charges at the interval's limit", lambda: cp.model.power_w == 3_000
            )
            # MeterValues report it (the first ones may predate the schedule: safe limit)
            await wait_until("meter values show it", lambda: status.power_w == 3_000)
            assert (status.energy_wh or 0) > 0
            assert status.boots == 1
            assert (status.vendor, status.model) == ("gridchain", "gridchain-sim")
            assert status.connectors[1] == "Charging"
            assert status.transaction_id == cp.transaction_id is not None
            assert status.meter_start_wh == 0
            profiles = cp.model.profiles
            assert profiles[SAFE_PROFILE_ID].periods == ((0, SAFE_W),)
            assert profiles[SAFE_PROFILE_ID].duration_ms is None
            scheduled = profiles[SCHEDULE_PROFILE_ID]
            assert scheduled.stack_level > profiles[SAFE_PROFILE_ID].stack_level
            assert scheduled.periods == ((0, 3_000.0), (INTERVAL_MS, 5_000.0))
            assert scheduled.duration_ms == 2 * INTERVAL_MS
            assert scheduled.purpose == "TxDefaultProfile"
            assert (
                loop.controller.metrics.value(
                    "meterbridge_ocpp_messages_total",
                    {"charger": "cp1", "action": "StartTransaction"},
                )
                == 1
            )
            # the next decision commits: the charger gets a new profile with it
            start = scheduled.start_ms
            third = decision(
                3, start + 2 * INTERVAL_MS, start + 3 * INTERVAL_MS, [(OWNER, "EV", 2_000)]
            )
            loop.node.decisions = [third, *loop.node.decisions]
            await wait_until(
                "the third interval is installed",
                lambda: (
                    cp.model.profiles[SCHEDULE_PROFILE_ID].periods[-1] == (2 * INTERVAL_MS, 2_000)
                ),
            )
            assert cp.model.profiles[SCHEDULE_PROFILE_ID].duration_ms == 3 * INTERVAL_MS
            # the central system records it once the charger's answer is in
            await wait_until("recorded as installed", lambda: len(status.installed or ()) == 3)
            health = loop.controller.health()["chargers"]["cp1"]
            assert health["connected"] is True
            assert health["connectors"] == {"1": "Charging"}
            assert health["schedule"][-1] == [
                start + 2 * INTERVAL_MS,
                start + 3 * INTERVAL_MS,
                2_000,
            ]


async def test_the_ev_leaves_and_the_transaction_stops() -> None:
    async with controller_loop([charger()]) as loop:
        loop.node.decisions = schedule(4_000, 4_000)
        ev = SimEV(capacity_wh=60_000, soc=0.5, max_power_w=11_000, arrive_s=0.0, depart_s=1.0)
        async with charge_point(loop, "cp1", ev=ev) as cp:
            status = loop.controller.csms.status["cp1"]
            await wait_until("the transaction stopped", lambda: status.meter_stop_wh is not None)
            assert status.transaction_id is None
            assert cp.model.power_w == 0
            await wait_until("the connector is free", lambda: status.connectors[1] == "Available")
            assert status.meter_stop_wh == round(cp.model.import_wh)


async def test_after_a_reconnect_everything_is_sent_again() -> None:
    async with controller_loop([charger()]) as loop:
        loop.node.decisions = schedule(3_000, 5_000)
        async with charge_point(loop, "cp1") as cp:
            status = loop.controller.csms.status["cp1"]
            await wait_until("installed", lambda: SCHEDULE_PROFILE_ID in cp.model.profiles)
            before = len(cp.received)
            cp.model.profiles.clear()  # as if the charger lost them with the connection
            session = loop.controller.csms._sessions["cp1"]
            await session._connection.close()
            await wait_until("reconnected", lambda: status.connections == 2)
            await wait_until(
                "both profiles sent again",
                lambda: {SAFE_PROFILE_ID, SCHEDULE_PROFILE_ID} <= set(cp.model.profiles),
            )
            again = {r.profile.profile_id for r in cp.received[before:] if r.profile}
            assert again == {SAFE_PROFILE_ID, SCHEDULE_PROFILE_ID}
            assert status.boots == 1  # a reconnect is not a reboot
            await wait_until("charging again", lambda: cp.model.power_w == 3_000)


async def test_a_charger_that_refuses_profiles_is_counted_and_the_others_go_on() -> None:
    async with controller_loop([charger("stubborn"), charger("cp1")]) as loop:
        loop.node.decisions = schedule(3_000, 3_000)
        async with (
            charge_point(loop, "stubborn", refuse=True) as bad,
            charge_point(loop, "cp1") as good,
        ):
            metrics = loop.controller.metrics
            await wait_until(
                "refusals counted",
                lambda: (
                    metrics.value(
                        "meterbridge_ocpp_profiles_total",
                        {"charger": "stubborn", "outcome": "rejected"},
                    )
                    >= 2
                ),
            )
            await wait_until("the other charger follows", lambda: good.model.power_w == 3_000)
            assert loop.controller.csms.status["stubborn"].refusals >= 2
            assert not bad.model.profiles
            # refused profiles are sent again at the next pass; the controller did not stop
            assert len(bad.received) >= 2
            assert all(not r.accepted for r in bad.received)


async def test_an_unknown_charge_point_is_refused_before_the_upgrade() -> None:
    async with controller_loop([charger()]) as loop:
        with pytest.raises(InvalidStatus) as refused:
            async with connect(f"{loop.url}/intruder", subprotocols=[Subprotocol("ocpp1.6")]):
                pass
        assert refused.value.response.status_code == 404
        assert (
            loop.controller.metrics.value(
                "meterbridge_ocpp_connections_total", {"charger": "(unknown)", "outcome": "unknown"}
            )
            == 1
        )


async def test_unscheduled_and_discharge_intervals() -> None:
    async with controller_loop([charger()]) as loop:
        start = now_ms() - 1_000
        loop.node.decisions = [
            decision(2, start + INTERVAL_MS, start + 2 * INTERVAL_MS, [(OTHER, "EV", 7_000)]),
            decision(1, start, start + INTERVAL_MS, [(OWNER, "EV", -3_000)]),
        ]
        async with charge_point(loop, "cp1") as cp:
            await wait_until("installed", lambda: SCHEDULE_PROFILE_ID in cp.model.profiles)
            # discharge cannot be asked of an OCPP 1.6 charger: 0 W, not a made-up charge;
            # another owner's EV is not this charger's: its interval gets the safe limit
            assert cp.model.profiles[SCHEDULE_PROFILE_ID].periods == ((0, 0), (INTERVAL_MS, SAFE_W))
            assert (
                loop.controller.metrics.value(
                    "meterbridge_discharge_not_expressible_total", {"charger": "cp1"}
                )
                == 1
            )
            await wait_until("not charging", lambda: cp.model.power_w == 0)


async def test_failsafe_when_the_chain_is_silent_and_back_when_it_answers() -> None:
    async with controller_loop([charger()], failsafe_after_s=1.0) as loop:
        loop.node.decisions = schedule(3_000, 3_000)
        async with charge_point(loop, "cp1") as cp:
            await wait_until("scheduled", lambda: cp.model.power_w == 3_000)
            loop.node.decisions = None  # the node answers 503 from now on
            await wait_until("at the safe limit", lambda: cp.model.power_w == SAFE_W)
            assert SCHEDULE_PROFILE_ID not in cp.model.profiles
            assert loop.controller.metrics.value("meterbridge_failsafe") == 1
            loop.node.decisions = schedule(3_000, 3_000)
            await wait_until("scheduled again", lambda: cp.model.power_w == 3_000)
            assert loop.controller.metrics.value("meterbridge_failsafe") == 0


async def test_a_malformed_meter_value_is_logged_not_fatal() -> None:
    async with controller_loop([charger()]) as loop:
        loop.node.decisions = schedule(3_000, 3_000)
        async with charge_point(loop, "cp1") as cp:
            status = loop.controller.csms.status["cp1"]
            await wait_until("charging on schedule", lambda: cp.model.power_w == 3_000)
            session = cp._session
            assert session is not None
            bad = call.MeterValues(
                connector_id=1,
                meter_value=[
                    {
                        "timestamp": "2026-01-01T00:00:00Z",
                        "sampledValue": [{"value": "lots", "measurand": "Power.Active.Import"}],
                    }
                ],
            )
            await session.call(bad, suppress=False)  # answered (no CallError), the sample skipped
            good = cp.meter_values(now_ms())
            await session.call(good)
            assert status.power_w == 3_000
            assert status.connected


async def test_a_charger_with_an_authorization_key_must_present_it() -> None:
    key = "0123456789abcdef"
    locked = ChargerConfig(charge_point_id="cp1", owner=OWNER, safe_limit_w=SAFE_W, auth_key=key)
    async with controller_loop([locked]) as loop:
        loop.node.decisions = schedule(3_000, 3_000)
        with pytest.raises(InvalidStatus) as refused:
            async with connect(f"{loop.url}/cp1", subprotocols=[Subprotocol("ocpp1.6")]):
                pass
        assert refused.value.response.status_code == 401
        wrong = SimChargePoint(
            "cp1", loop.url, ChargerModel(), sim_now_ms=now_ms, auth_key="f" * 16
        )
        with pytest.raises(InvalidStatus):
            await wrong._connected(asyncio.Event())
        assert (
            loop.controller.metrics.value(
                "meterbridge_ocpp_connections_total", {"charger": "cp1", "outcome": "unauthorized"}
            )
            == 2
        )
        async with charge_point(loop, "cp1", auth_key=key) as cp:
            await wait_until("charging on schedule", lambda: cp.model.power_w == 3_000)
