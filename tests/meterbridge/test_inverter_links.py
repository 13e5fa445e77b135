"""An inverter without ``meter_id`` follows the Battery meter the chain links its name to
(ADR 0048), as a charger follows its EV meter.

Why: an owner with two batteries would otherwise drive both inverters with the sum of both
batteries' rates.  The rules are the chargers' (a configured meter wins, a link to another
owner's meter or to a meter of another type is ignored, a failing lookup keeps the last link);
the lookups go to a fake node's ``GET /v1/devices/{name}``.  The Modbus path of two inverters
of one owner is tested in test_setpoints.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import structlog

from gridchain.api import models as m
from gridchain.api.client import NodeClient
from gridchain.meterbridge.config import ChargerConfig, InverterConfig
from gridchain.meterbridge.device_meters import DeviceMeters, FollowedMeter
from tests.meterbridge.devices_helpers import OTHER, OWNER
from tests.meterbridge.fakenode import FakeNode
from tests.procs import free_test_port


def inverter(name: str = "inv-1", meter_id: str | None = None) -> InverterConfig:
    return InverterConfig(
        name=name, owner=OWNER, bus="b", slave_id=9, profile="x", meter_id=meter_id
    )


def link(
    meter_id: str, *, device_id: str = "inv-1", meter_type: str = "Battery", owner: str = OWNER
) -> m.DeviceLink:
    return m.DeviceLink(
        device_id=device_id,
        meter_id=meter_id,
        meter_type=meter_type,
        owner=owner,
        linked_height=4,
    )


@pytest.fixture
async def node() -> AsyncIterator[FakeNode]:
    fake = FakeNode()
    await fake.start(free_test_port())
    try:
        yield fake
    finally:
        await fake.stop()


async def test_inverters_follow_their_config_the_chain_or_their_owner(node: FakeNode) -> None:
    meters = DeviceMeters.of_inverters(
        [inverter("inv-1"), inverter("inv-2", "bat-config"), inverter("inv-3")]
    )
    node.device_links["inv-1"] = link("bat-chain")
    with structlog.testing.capture_logs() as logs:
        async with NodeClient(node.url) as client:
            await meters.refresh(client, timeout_s=2.0)
        assert meters.follow("inv-1") == FollowedMeter("bat-chain", "chain")
        assert meters.follow("inv-2") == FollowedMeter("bat-config", "config")
        assert meters.follow("inv-3") == FollowedMeter(None, "owner")  # not linked: 404
        assert meters.follow("inv-1") == FollowedMeter("bat-chain", "chain")
    assert node.device_requests == 3  # one lookup per inverter
    follows = [(e["inverter"], e["meter"]) for e in logs if e["event"] == "inverter_follows_meter"]
    assert follows == [("inv-1", "bat-chain"), ("inv-2", "bat-config"), ("inv-3", None)]


def test_a_configured_meter_wins_over_the_chains_link() -> None:
    meters = DeviceMeters.of_inverters([inverter(meter_id="bat-config")])
    meters.links["inv-1"] = link("bat-chain")
    with structlog.testing.capture_logs() as logs:
        for _ in range(3):
            assert meters.follow("inv-1") == FollowedMeter("bat-config", "config")
    disagreements = [e for e in logs if e["event"] == "inverter_link_disagrees"]
    assert len(disagreements) == 1  # once, not at every poll
    assert disagreements[0]["log_level"] == "warning"
    assert (disagreements[0]["config_meter"], disagreements[0]["chain_meter"]) == (
        "bat-config",
        "bat-chain",
    )


def test_a_link_to_another_owners_meter_or_an_ev_meter_is_not_followed() -> None:
    meters = DeviceMeters.of_inverters([inverter()])
    with structlog.testing.capture_logs() as logs:
        for found in (link("bat-x", owner=OTHER), link("ev-a", meter_type="EV")):
            meters.links["inv-1"] = found
            assert meters.follow("inv-1") == FollowedMeter(None, "owner")
            assert meters.follow("inv-1") == FollowedMeter(None, "owner")
        meters.links["inv-1"] = link("bat-a")
        assert meters.follow("inv-1") == FollowedMeter("bat-a", "chain")
    ignored = [e for e in logs if e["event"] == "inverter_link_ignored"]
    assert [(e["inverter"], e["chain_meter"], e["log_level"]) for e in ignored] == [
        ("inv-1", "bat-x", "warning"),
        ("inv-1", "ev-a", "warning"),
    ]
    changes = [e["meter"] for e in logs if e["event"] == "inverter_follows_meter"]
    assert changes == [None, "bat-a"]  # logged when it changes, not at every call


def test_a_charger_and_an_inverter_of_one_id_each_take_only_their_meter_type() -> None:
    """The one class serves both kinds: the meter type a link must have is the kind's."""
    chargers = DeviceMeters.of_chargers(
        [ChargerConfig(charge_point_id="inv-1", owner=OWNER, safe_limit_w=0)]
    )
    inverters = DeviceMeters.of_inverters([inverter()])
    for meters in (chargers, inverters):
        meters.links["inv-1"] = link("bat-a")
    assert chargers.follow("inv-1") == FollowedMeter(None, "owner")
    assert inverters.follow("inv-1") == FollowedMeter("bat-a", "chain")
    for meters in (chargers, inverters):
        meters.links["inv-1"] = link("ev-a", meter_type="EV")
    assert chargers.follow("inv-1") == FollowedMeter("ev-a", "chain")
    assert inverters.follow("inv-1") == FollowedMeter(None, "owner")


async def test_a_failing_lookup_keeps_the_last_link(node: FakeNode) -> None:
    meters = DeviceMeters.of_inverters([inverter()])
    node.device_links["inv-1"] = link("bat-a")
    with structlog.testing.capture_logs() as logs:
        async with NodeClient(node.url) as client:
            await meters.refresh(client, timeout_s=2.0)
            assert meters.follow("inv-1") == FollowedMeter("bat-a", "chain")
            node.device_links_down = True
            node.device_links["inv-1"] = link("bat-b")  # not seen while the lookup fails
            for _ in range(3):
                await meters.refresh(client, timeout_s=2.0)
                assert meters.follow("inv-1") == FollowedMeter("bat-a", "chain")
            node.device_links_down = False
            await meters.refresh(client, timeout_s=2.0)
            assert meters.follow("inv-1") == FollowedMeter("bat-b", "chain")
    lookups = [e["event"] for e in logs if e["event"].startswith("inverter_link_")]
    assert lookups == ["inverter_link_unavailable", "inverter_link_available"]
    assert node.device_requests == 5


async def test_a_name_that_is_no_chain_device_id_is_never_looked_up(node: FakeNode) -> None:
    with structlog.testing.capture_logs() as logs:
        meters = DeviceMeters.of_inverters([inverter("garage battery"), inverter("inv-1")])
        node.device_links["inv-1"] = link("bat-a")
        async with NodeClient(node.url) as client:
            for _ in range(2):
                await meters.refresh(client, timeout_s=2.0)
        assert meters.follow("garage battery") == FollowedMeter(None, "owner")
        assert meters.follow("inv-1") == FollowedMeter("bat-a", "chain")
    assert node.device_requests == 2  # inv-1 twice, the other name never
    skipped = [e for e in logs if e["event"] == "inverter_link_not_looked_up"]
    assert [(e["inverter"], e["log_level"]) for e in skipped] == [("garage battery", "warning")]
