"""A charger without ``meter_id`` follows the meter the chain links it to (ADR 0048).

Why: the council records which meter measures a charger (LinkDevice); the bridge's central
system must then send that meter's C&D rates to the charger (not the sum of its owner's), and
follow a new link when the council changes it, while a charger configured with a meter keeps
it.  The OCPP tests run the central system and a simulated charge point over real websockets;
the link comes from a fake node's ``GET /v1/devices/{id}``.
"""

from __future__ import annotations

import structlog

from gridchain.api import models as m
from gridchain.meterbridge.config import ChargerConfig
from gridchain.meterbridge.csms import SCHEDULE_PROFILE_ID
from gridchain.meterbridge.device_meters import DeviceMeters, FollowedMeter
from gridchain.meterbridge.sim_charger import InstalledProfile
from tests.meterbridge.devices_helpers import OTHER, OWNER, decision, now_ms, wait_until
from tests.meterbridge.test_ocpp import INTERVAL_MS, SAFE_W, charge_point, controller_loop

GARAGE_W, STREET_W = 3_000, 5_000


def link(meter_id: str, *, meter_type: str = "EV", owner: str = OWNER) -> m.DeviceLink:
    return m.DeviceLink(
        device_id="cp1", meter_id=meter_id, meter_type=meter_type, owner=owner, linked_height=4
    )


def two_vehicles() -> list[m.Decision]:
    """The current interval: the owner's EV on meter ev-garage at 3 kW, on ev-street at 5 kW."""
    start = now_ms() - 1_000
    both = decision(
        1, start, start + INTERVAL_MS, [(OWNER, "EV", GARAGE_W), (OWNER, "EV", STREET_W)]
    )
    named = [
        both.entries[0].model_copy(update={"meter_id": "ev-garage"}),
        both.entries[1].model_copy(update={"meter_id": "ev-street"}),
    ]
    return [both.model_copy(update={"entries": named})]


def charger(meter_id: str | None = None) -> ChargerConfig:
    return ChargerConfig(charge_point_id="cp1", owner=OWNER, safe_limit_w=SAFE_W, meter_id=meter_id)


def first_limit(profiles: dict[int, InstalledProfile]) -> float | None:
    """The limit the schedule profile sets now (None: no schedule installed)."""
    profile = profiles.get(SCHEDULE_PROFILE_ID)
    return None if profile is None or not profile.periods else profile.periods[0][1]


async def test_the_charger_follows_the_chains_link_and_a_new_one() -> None:
    async with controller_loop([charger()]) as loop:
        loop.node.decisions = two_vehicles()
        async with charge_point(loop, "cp1") as cp:
            # unlinked: the sum of the owner's EV rates, as before links existed
            await wait_until(
                "the owner's sum", lambda: first_limit(cp.model.profiles) == GARAGE_W + STREET_W
            )
            loop.node.device_links["cp1"] = link("ev-garage")
            await wait_until(
                "the garage meter's rate", lambda: first_limit(cp.model.profiles) == GARAGE_W
            )
            await wait_until("the EV charges at it", lambda: cp.model.power_w == GARAGE_W)
            health = loop.controller.health()["chargers"]["cp1"]
            assert (health["meter_id"], health["meter_source"]) == ("ev-garage", "chain")
            loop.node.device_links["cp1"] = link("ev-street")
            await wait_until(
                "the street meter's rate", lambda: first_limit(cp.model.profiles) == STREET_W
            )
            del loop.node.device_links["cp1"]  # unlinked again
            await wait_until(
                "the sum again", lambda: first_limit(cp.model.profiles) == GARAGE_W + STREET_W
            )


async def test_a_configured_meter_wins_over_the_chain() -> None:
    async with controller_loop([charger("ev-street")]) as loop:
        loop.node.decisions = two_vehicles()
        loop.node.device_links["cp1"] = link("ev-garage")
        with structlog.testing.capture_logs() as logs:
            async with charge_point(loop, "cp1") as cp:
                await wait_until(
                    "the configured meter", lambda: first_limit(cp.model.profiles) == STREET_W
                )
                await wait_until(
                    "several polls", lambda: loop.node.schedule_requests >= 5, timeout_s=30
                )
                assert first_limit(cp.model.profiles) == STREET_W
    disagreements = [e for e in logs if e["event"] == "charger_link_disagrees"]
    assert len(disagreements) == 1  # once, not at every poll
    assert disagreements[0]["log_level"] == "warning"
    assert (disagreements[0]["config_meter"], disagreements[0]["chain_meter"]) == (
        "ev-street",
        "ev-garage",
    )


def test_a_link_to_another_owners_meter_or_a_battery_meter_is_not_followed() -> None:
    meters = DeviceMeters.of_chargers([charger()])
    with structlog.testing.capture_logs() as logs:
        for found in (link("ev-x", owner=OTHER), link("bat-a", meter_type="Battery")):
            meters.links["cp1"] = found
            assert meters.follow("cp1") == FollowedMeter(None, "owner")
            assert meters.follow("cp1") == FollowedMeter(None, "owner")
        meters.links["cp1"] = link("ev-garage")
        assert meters.follow("cp1") == FollowedMeter("ev-garage", "chain")
    ignored = [e for e in logs if e["event"] == "charger_link_ignored"]
    assert [e["chain_meter"] for e in ignored] == ["ev-x", "bat-a"]
    changes = [e["meter"] for e in logs if e["event"] == "charger_follows_meter"]
    assert changes == [None, "ev-garage"]  # logged when it changes, not at every call


def test_a_node_that_never_answered_leaves_the_charger_on_its_config() -> None:
    meters = DeviceMeters.of_chargers(
        [charger(), charger("ev-garage").model_copy(update={"charge_point_id": "cp2"})]
    )
    assert meters.follow("cp1") == FollowedMeter(None, "owner")
    assert meters.follow("cp2") == FollowedMeter("ev-garage", "config")


async def test_a_lookup_the_node_refuses_keeps_the_last_link() -> None:
    async with controller_loop([charger()]) as loop:
        loop.node.decisions = two_vehicles()
        loop.node.device_links["cp1"] = link("ev-garage")
        await wait_until(
            "the link is known",
            lambda: loop.controller.charger_meters.links.get("cp1") is not None,
        )
        with structlog.testing.capture_logs() as logs:
            loop.node.device_links_down = True
            requests = loop.node.device_requests
            await wait_until("asked again", lambda: loop.node.device_requests >= requests + 3)
            assert loop.controller.charger_meters.follow("cp1") == FollowedMeter(
                "ev-garage", "chain"
            )
            loop.node.device_links_down = False
            requests = loop.node.device_requests
            await wait_until("answered again", lambda: loop.node.device_requests >= requests + 2)
        failing = [e["event"] for e in logs if e["event"].startswith("charger_link_")]
        assert failing == ["charger_link_unavailable", "charger_link_available"]
