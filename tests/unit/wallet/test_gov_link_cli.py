"""``gridchain gov propose link | unlink`` against a live node, and the API that shows links.

Why: the council records which device (a charger's OCPP charge point id) a meter measures
(ADR 0048) with the same commands it uses for everything else; ``/v1/meters`` shows each
meter's device and ``/v1/devices/{id}`` finds a device's meter, which is what the meter
bridge asks.  The chain's refusals come back with their codes; a malformed device id is
refused before any traffic.  The node is a solo validator in this process with a council of
three approving by two and an EV and a battery meter per participant.
"""

from __future__ import annotations

import re

import pytest

from gridchain.protocol.tx import Device
from tests.helpers import cd_meter_id
from tests.unit.node.conftest import LiveNode
from tests.unit.wallet.conftest import CliRunner
from tests.unit.wallet.test_gov_cli import gov_json, live, member, printed, refused
from tests.unit.wallet.test_gov_params_cli import passed

__all__ = ["live"]

EV_A = cd_meter_id(0, Device.EV)
EV_B = cd_meter_id(1, Device.EV)
CHARGER = "CP-7"


async def test_link_shows_in_the_meters_and_the_device_lookup(
    live: LiveNode, cli: CliRunner
) -> None:
    code, body = await live.get(f"/v1/devices/{CHARGER}")
    assert (code, body["error"]["code"]) == (404, "not_found")
    proposal = await passed(cli, live, "link", "--meter", EV_A, "--device", CHARGER)
    assert (proposal["kind"], proposal["status"]) == ("LinkDevice", "applied"), proposal
    assert proposal["record"] == {"type": "LinkDevice", "meter_id": EV_A, "device_id": CHARGER}
    code, body = await live.get(f"/v1/devices/{CHARGER}")
    assert code == 200, body
    owner = live.chain.bundle.participants[0].address
    assert body == {
        "device_id": CHARGER,
        "meter_id": EV_A,
        "meter_type": "EV",
        "owner": owner,
        "linked_height": proposal["closed_height"],
    }
    code, meter = await live.get(f"/v1/meters/{EV_A}")
    assert (meter["device_id"], meter["device_linked_height"]) == (
        CHARGER,
        proposal["closed_height"],
    )
    code, listing = await live.get("/v1/meters")
    devices = {m["meter_id"]: m["device_id"] for m in listing["meters"]}
    assert devices[EV_A] == CHARGER
    assert devices[EV_B] is None
    run = await cli(["gov", "show", proposal["id"], "--node", live.url])
    assert re.search(rf"^action +LinkDevice {EV_A} -> {CHARGER}$", printed(run.out), re.MULTILINE)


async def test_unlink_removes_it_and_a_second_unlink_fails_with_the_chains_code(
    live: LiveNode, cli: CliRunner
) -> None:
    await passed(cli, live, "link", "--meter", EV_A, "--device", CHARGER)
    proposed = await gov_json(cli, "propose", "unlink", "--meter", EV_A, *member(live, 1))
    table = await cli(["gov", "approve", proposed["proposal_id"], *member(live, 2)])
    assert table.code == 0, table.err
    assert re.search(rf"^action +LinkDevice unlink {EV_A}$", printed(table.out), re.MULTILINE)
    assert re.search(r"^outcome +applied at height \d+$", printed(table.out), re.MULTILINE)
    code, _ = await live.get(f"/v1/devices/{CHARGER}")
    assert code == 404
    again = await passed(cli, live, "unlink", "--meter", EV_A)
    assert (again["status"], again["error"]) == ("failed", "meter_not_linked")


@pytest.mark.parametrize(
    ("first", "second", "code"),
    [
        ((EV_A, CHARGER), (EV_B, CHARGER), "device_already_linked"),
        ((EV_A, CHARGER), (EV_A, "CP-8"), "meter_already_linked"),
        (None, ("no-such-meter", CHARGER), "unregistered_meter"),
        (None, (cd_meter_id(0, Device.BATTERY), "inverter-1"), ""),
    ],
)
async def test_links_the_chain_refuses_fail_with_its_code(
    live: LiveNode,
    cli: CliRunner,
    first: tuple[str, str] | None,
    second: tuple[str, str],
    code: str,
) -> None:
    if first is not None:
        await passed(cli, live, "link", "--meter", first[0], "--device", first[1])
    proposal = await passed(cli, live, "link", "--meter", second[0], "--device", second[1])
    assert (proposal["status"], proposal["error"]) == ("failed" if code else "applied", code)


@pytest.mark.parametrize(
    "argv",
    [
        ["link", "--meter", EV_A, "--device", "CP 7"],
        ["link", "--meter", EV_A, "--device", "x" * 49],
        ["link", "--meter", EV_A, "--device", ""],
        ["link", "--meter", "", "--device", CHARGER],
        ["unlink", "--meter", "m" * 65],
    ],
)
async def test_bad_link_arguments_are_refused_before_any_traffic(
    live: LiveNode, cli: CliRunner, argv: list[str]
) -> None:
    error = await refused(cli, "propose", *argv, *member(live, 1))
    assert error["code"] == "bad_argument"
    _, body = await live.get("/v1/proposals")
    assert body["proposals"] == []


async def test_a_malformed_device_id_is_a_bad_request(live: LiveNode) -> None:
    code, body = await live.get("/v1/devices/CP%207")
    assert (code, body["error"]["code"]) == (400, "invalid_request")
