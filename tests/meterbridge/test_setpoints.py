"""Battery setpoints over real Modbus (pymodbus client against the simulator's server), the
pure plan from decisions, and the simulated charger's OCPP profile stacking."""

from __future__ import annotations

import asyncio
from importlib import resources

import pytest

from gridchain.api import models as m
from gridchain.api.client import NodeClient
from gridchain.meterbridge.config import DevicesConfig, InverterConfig, TcpBus
from gridchain.meterbridge.devices import DeviceController
from gridchain.meterbridge.metrics import BridgeMetrics
from gridchain.meterbridge.modbus import BusClient, SetpointWriteError
from gridchain.meterbridge.profiles import (
    DecodeError,
    ProfileError,
    decode_setpoint_words,
    load_profile,
    parse_profile,
)
from gridchain.meterbridge.setpoints import charger_plan, inverter_setpoint
from gridchain.meterbridge.sim_charger import ChargerModel, InstalledProfile, InverterModel, SimEV
from gridchain.meterbridge.simulator import SimMeter
from tests.meterbridge.conftest import running_simulator
from tests.meterbridge.devices_helpers import OTHER, OWNER, decision, now_ms, wait_until
from tests.meterbridge.fakenode import FakeNode
from tests.procs import free_test_port

INVERTER = "generic-battery-inverter"


def inverter_meter(slave_id: int = 9) -> tuple[SimMeter, InverterModel]:
    model = InverterModel(capacity_wh=10_000, soc=0.5, max_w=10_000)
    return SimMeter(slave_id, load_profile(INVERTER), "battery", source=model), model


def bus(port: int) -> BusClient:
    config = TcpBus(name="b", kind="rtu-over-tcp", host="127.0.0.1", port=port, timeout_s=0.3)
    return BusClient(config, BridgeMetrics())


# --- the profile's setpoint register ---------------------------------------------------------


def test_the_setpoint_register_counts_export_positive_like_sunspec() -> None:
    spec = load_profile(INVERTER).setpoint
    assert spec is not None
    words = spec.encode_w(-2_500)  # discharging 2.5 kW: the chain's sign is import positive
    assert words == [0, 2_500]  # int32 high word first, injection positive
    assert decode_setpoint_words(spec, words) == -2_500
    assert decode_setpoint_words(spec, spec.encode_w(3_000)) == 3_000
    with pytest.raises(DecodeError, match="beyond"):
        spec.encode_w(10_001)


def test_a_setpoint_overlapping_a_meter_register_is_refused() -> None:
    text = (resources.files("gridchain.meterbridge") / "profiles" / f"{INVERTER}.toml").read_text()
    assert parse_profile(text, "ok").setpoint is not None
    overlapping = text.replace("address = 20\n", "address = 4\n")  # the import energy's words
    with pytest.raises(ProfileError, match="overlap"):
        parse_profile(overlapping, "test")
    bad_unit = text.replace('unit = "W"\nsign', 'unit = "VA"\nsign')
    with pytest.raises(ProfileError):
        parse_profile(bad_unit, "test")


# --- writes over Modbus ------------------------------------------------------------------


async def test_a_setpoint_is_written_read_back_and_followed() -> None:
    meter, model = inverter_meter()
    async with running_simulator([meter], start_ms=now_ms()) as (_, port):
        client = bus(port)
        spec = meter.profile.setpoint
        assert spec is not None
        try:
            assert await client.write_setpoint("inv", 9, spec, -2_500, revert_s=30) == -2_500
            assert await client.read_setpoint("inv", 9, spec) == -2_500
            assert model.setpoint_w == -2_500
            assert model.revert_s == 30
            model.sync(meter.t_ms or 0)
            measured = await client.read_meter("inv", 9, meter.profile)
            assert measured.power_w == -2_500  # the inverter's own meter shows it exporting
            assert await client.write_setpoint("inv", 9, spec, 4_000, revert_s=30) == 4_000
            measured = await client.read_meter("inv", 9, meter.profile)
            assert measured.power_w == 4_000
        finally:
            await client.close()


async def test_a_device_that_does_not_hold_the_setpoint_is_a_typed_error() -> None:
    # a meter without a setpoint register at that slave: the write lands in registers the
    # device overwrites with its measurements, so the read-back differs
    sdm = SimMeter(5, load_profile("generic"), "load")
    spec = load_profile(INVERTER).setpoint
    assert spec is not None
    async with running_simulator([sdm], start_ms=now_ms()) as (_, port):
        client = bus(port)
        try:
            with pytest.raises(SetpointWriteError):
                await client.write_setpoint("not-an-inverter", 5, spec, 1_500, revert_s=None)
            with pytest.raises(SetpointWriteError):  # nobody at slave 6: no answer
                await client.write_setpoint("absent", 6, spec, 1_500, revert_s=None)
        finally:
            await client.close()


def test_the_simulated_inverter_reverts_when_nobody_writes() -> None:
    clock = [1_000_000]
    model = InverterModel(capacity_wh=10_000, soc=0.5, max_w=5_000, wall=lambda: clock[0])
    model.revert_s = 10
    model.write_setpoint(3_000)
    model.sync(0)
    assert model.power_w == 3_000
    clock[0] += 10_000
    model.sync(1)
    assert model.power_w == 0
    model.write_setpoint(-9_000)  # beyond its rating: clamped
    model.sync(2)
    assert model.power_w == -5_000


async def test_the_controller_sets_each_battery_and_falls_back_to_its_safe_setpoint() -> None:
    """Why: one owner's two batteries must each follow the requests naming their own meter (one
    by its config's ``meter_id``, one by the chain's link of its name), not both the sum."""
    garage, garage_model = inverter_meter(9)
    shed, shed_model = inverter_meter(10)
    node = FakeNode()
    await node.start(free_test_port())
    node.device_links["inv-shed"] = m.DeviceLink(
        device_id="inv-shed",
        meter_id="bat-shed",
        meter_type="Battery",
        owner=OWNER,
        linked_height=3,
    )
    start = now_ms() - 1_000
    node.decisions = [
        decision(
            1,
            start,
            start + 60_000,
            [(OWNER, "Battery", -2_000), (OWNER, "Battery", 1_500), (OTHER, "Battery", 700)],
            ["bat-garage", "bat-shed", "bat-other"],
        )
    ]

    def inverter(name: str, slave_id: int, meter_id: str | None) -> InverterConfig:
        return InverterConfig(
            name=name,
            owner=OWNER,
            bus="b",
            slave_id=slave_id,
            profile=INVERTER,
            safe_setpoint_w=500,
            meter_id=meter_id,
        )

    async with running_simulator([garage, shed], start_ms=now_ms()) as (_, port):
        config = DevicesConfig(
            poll_s=0.2,
            failsafe_after_s=1.0,
            inverters=[inverter("inv", 9, "bat-garage"), inverter("inv-shed", 10, None)],
        )
        client = bus(port)
        stop = asyncio.Event()
        async with NodeClient(node.url) as node_client:
            controller = DeviceController(config, node_client, {"b": client}, client.metrics)
            task = asyncio.ensure_future(controller.run(stop))
            try:
                await wait_until(
                    "each at its own meter's rate",
                    lambda: (garage_model.setpoint_w, shed_model.setpoint_w) == (-2_000, 1_500),
                )
                assert garage_model.revert_s == 1  # it reverts by itself after failsafe_after_s
                health = controller.health()["inverters"]
                assert [(h["meter_id"], h["meter_source"]) for h in health.values()] == [
                    ("bat-garage", "config"),
                    ("bat-shed", "chain"),
                ]
                node.decisions = None
                await wait_until(
                    "at the safe setpoint",
                    lambda: (garage_model.setpoint_w, shed_model.setpoint_w) == (500, 500),
                )
                node.decisions = [
                    decision(1, start, start + 60_000, [(OWNER, "Battery", 1_200)], ["bat-shed"])
                ]
                await wait_until(
                    "following the chain again",
                    lambda: (garage_model.setpoint_w, shed_model.setpoint_w) == (500, 1_200),
                )
                for name in ("inv", "inv-shed"):
                    assert (
                        client.metrics.value(
                            "meterbridge_setpoint_writes_total",
                            {"inverter": name, "outcome": "error"},
                        )
                        == 0
                    )
            finally:
                stop.set()
                await task
                await client.close()
    await node.stop()


# --- the pure plan -----------------------------------------------------------------------


def test_the_charger_plan_fills_gaps_and_skips_ended_intervals() -> None:
    decisions = [
        decision(5, 500, 600, [(OWNER, "EV", 4_000), (OWNER, "EV", 1_000)]),
        decision(3, 300, 400, [(OWNER, "Battery", 2_000)]),
        decision(2, 200, 300, [(OWNER, "EV", 9_000)]),
    ]
    plan = charger_plan(decisions, OWNER, now_ms=310, safe_limit_w=700)
    assert [(p.start_ms, p.end_ms, p.limit_w, p.scheduled) for p in plan.periods] == [
        (300, 400, 700, False),  # decided, but not for this owner's EV
        (400, 500, 700, False),  # not decided: the gap
        (500, 600, 5_000, True),  # two requests of one owner add up
    ]
    assert charger_plan(decisions, OWNER, now_ms=600, safe_limit_w=700).empty
    assert inverter_setpoint(decisions, OWNER, 350, 0) == (2_000, True)
    assert inverter_setpoint(decisions, OWNER, 450, -100) == (-100, False)


def test_an_inverter_with_a_meter_follows_only_the_requests_naming_it() -> None:
    both = decision(
        4, 400, 500, [(OWNER, "Battery", -3_000), (OWNER, "Battery", 1_000)], ["bat-a", "bat-b"]
    )
    assert inverter_setpoint([both], OWNER, 410, 50, "bat-a") == (-3_000, True)
    assert inverter_setpoint([both], OWNER, 410, 50, "bat-b") == (1_000, True)
    assert inverter_setpoint([both], OWNER, 410, 50, "bat-c") == (50, False)
    assert inverter_setpoint([both], OWNER, 410, 50) == (-2_000, True)  # the owner's sum


def test_a_charger_with_a_meter_follows_only_the_requests_naming_it() -> None:
    """Why: one owner with two chargers must not have both follow the sum of both vehicles'
    rates (each would be allowed the other's power too); a request names its meter."""
    both = decision(4, 400, 500, [(OWNER, "EV", 4_000), (OWNER, "EV", 1_500)])
    named = both.model_copy(
        update={
            "entries": [
                both.entries[0].model_copy(update={"meter_id": "ev-garage"}),
                both.entries[1].model_copy(update={"meter_id": "ev-street"}),
            ]
        }
    )
    garage = charger_plan([named], OWNER, now_ms=410, safe_limit_w=700, meter_id="ev-garage")
    street = charger_plan([named], OWNER, now_ms=410, safe_limit_w=700, meter_id="ev-street")
    other = charger_plan([named], OWNER, now_ms=410, safe_limit_w=700, meter_id="ev-shed")
    assert [(p.limit_w, p.scheduled) for p in garage.periods] == [(4_000, True)]
    assert [(p.limit_w, p.scheduled) for p in street.periods] == [(1_500, True)]
    assert [(p.limit_w, p.scheduled) for p in other.periods] == [(700, False)]
    # Without a configured meter the charger follows the owner's sum, as before.
    legacy = charger_plan([named], OWNER, now_ms=410, safe_limit_w=700)
    assert [(p.limit_w, p.scheduled) for p in legacy.periods] == [(5_500, True)]


def test_the_simulated_charger_stacks_profiles_like_ocpp() -> None:
    model = ChargerModel(charger_max_w=7_400, ev=SimEV(40_000, 0.5, 11_000))
    assert model.limit_w(0) == 7_400  # no profile: the charger's own maximum
    model.profiles[1] = InstalledProfile(1, 0, "TxDefaultProfile", 0, None, ((0, 1_000.0),))
    model.profiles[2] = InstalledProfile(
        2, 1, "TxDefaultProfile", 1_000, 2_000, ((0, 3_000.0), (1_000, 5_000.0))
    )
    assert model.limit_w(500) == 1_000  # before the schedule starts: the safe profile
    assert model.limit_w(1_500) == 3_000
    assert model.limit_w(2_500) == 5_000
    assert model.limit_w(3_000) == 1_000  # the schedule ran out: back to the safe profile
    model.profiles[3] = InstalledProfile(3, 0, "ChargePointMaxProfile", 0, None, ((0, 4_000.0),))
    assert model.limit_w(2_500) == 4_000
    model.in_transaction = True
    model.profiles[4] = InstalledProfile(4, 0, "TxProfile", 0, None, ((0, 2_000.0),))
    assert model.limit_w(2_500) == 2_000  # a TxProfile overrides the default during a transaction
