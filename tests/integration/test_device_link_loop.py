"""The council links a charger to its meter and the bridge's charger follows it (ADR 0048).

Real processes: a validator (``gridchain node run``, solo, whose genesis names a council of
three approving by two), the simulator (``gridchain meterbridge simulate`` with an OCPP charge
point and its EV) and one meter bridge (``gridchain meterbridge run``) whose config names the
charger **without** a ``meter_id``.  Participant 1 has two EV meters, ``ev-garage`` and
``ev-street``, and a charge request on each at a different rate.  Unlinked, the charger follows
the sum of its owner's EV rates (as before links existed).  Then the council links the charger
to ``ev-garage`` with ``gridchain gov propose link`` and ``gov approve``: the bridge's central
system finds the link (``GET /v1/devices/cp-b``) and installs the garage request's rates on the
charger over OCPP-J; after ``gov propose unlink`` and a link to ``ev-street`` it installs the
street request's.  Everything checked is read from the validator's API and the bridge's and
simulator's logs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gridchain.genesis.builder import GenesisBundle
from gridchain.protocol.crypto import SigningKey
from gridchain.protocol.tx import CDKind, CDRequest, Device, sign_tx
from tests.e2e.test_gov_household import propose_and_approve
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

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("device_link_loop")]

BRIDGE = SigningKey(b"\x0a" * 32)
INTERVAL_MS = 3_000
SAFE_W = 1_000
CHARGER = "cp-b"
GARAGE, STREET = "ev-garage", "ev-street"
GARAGE_W, STREET_W = 2_000, 5_000
#: The requests' window: long enough for the link, the unlink and the second link.
WINDOW_MS = 150_000
#: Energies the windows can take (each interval is 10 minutes of energy at its rate) with
#: room to spare, so both requests have rates in most intervals.
GARAGE_WH, STREET_WH = 8_000, 20_000
SLAVE = 3


@dataclass
class Loop:
    chain: Chain
    node: NodeProcess
    bridge_log: Path
    sim_log: Path

    @property
    def url(self) -> str:
        return self.chain.api_url(0)


def two_ev_meters(bundle: GenesisBundle) -> dict[str, Any]:
    owner = bundle.participants[1].address
    return {
        "meters": [
            {
                "meter_id": meter_id,
                "owner": owner,
                "meter_type": "EV",
                "bridge_public_key": BRIDGE.public_key.hex(),
                "profile": "eastron-sdm120",
            }
            for meter_id in (GARAGE, STREET)
        ]
    }


def bridge_config(path: Path, node_url: str, sim_port: int, csms_port: int, owner: str) -> None:
    """The charger names its owner and no meter: the chain's link decides."""
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
meter_id = "{GARAGE}"
bus = "sim"
slave_id = {SLAVE}
profile = "eastron-sdm120"

[devices]
csms_port = {csms_port}
poll_s = 0.5
failsafe_after_s = 10

[[devices.chargers]]
charge_point_id = "{CHARGER}"
owner = "{owner}"
safe_limit_w = {SAFE_W}
""",
        encoding="utf-8",
    )


def events(log: Path) -> list[dict[str, Any]]:
    out = []
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out


def wait_for(what: str, check: Any, timeout_s: float, logs: list[Path]) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    tails = "\n".join(f"--- {p}\n{p.read_text(errors='replace')[-3000:]}" for p in logs)
    raise AssertionError(f"not reached within {timeout_s} s: {what}\n{tails}")


@pytest.fixture
def loop(tmp_path: Path) -> Iterator[Loop]:
    chain = make_chain(
        tmp_path / "chain",
        block_interval_ms=200,
        council=3,
        threshold=2,
        genesis_changes=two_ev_meters,
        schedule_interval_ms=INTERVAL_MS,
    )
    node = node_for(chain, 0)
    children: list[GridchainChild] = []
    try:
        node.start()
        sim_port, csms_port = free_test_port(), free_test_port()
        sim_log, bridge_log = tmp_path / "simulator.log", tmp_path / "bridge.log"
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
                ],
                sim_log,
            )
        )
        config = tmp_path / "bridge.toml"
        owner = chain.bundle.participants[1].address
        bridge_config(config, chain.api_url(0), sim_port, csms_port, owner)
        children.append(GridchainChild(["meterbridge", "run", "--config", str(config)], bridge_log))
        wait_for(
            "the charger connected",
            lambda: any(e.get("event") == "charger_connected" for e in events(bridge_log)),
            60,
            [sim_log, bridge_log],
        )
        yield Loop(chain, node, bridge_log, sim_log)
    finally:
        for child in reversed(children):
            child.stop()
        if node.proc is not None:
            node.terminate()


def send_request(chain: Chain, nonce: int, meter_id: str, max_rate_w: int, energy_wh: int) -> str:
    now = time.time_ns() // 1_000_000
    request = CDRequest(
        int(CDKind.CHARGE),
        int(Device.EV),
        now,
        now + WINDOW_MS,
        energy_wh,
        max_rate_w,
        2**64 - 1,  # no limit: any interval's price
        meter_id,
    )
    tx = sign_tx(chain.peer(1), chain.chain_id, nonce, request)
    status, body = submit(chain.api_url(0), tx)
    assert status in (200, 202), body
    wait_committed(chain.api_url(0), tx.hash().hex())
    return tx.hash().hex()


Period = tuple[int, int, int]


def rates(url: str, request_id: str) -> dict[tuple[int, int], int]:
    """(start, end) -> the request's rate, for every decision with a rate for it."""
    status, body = http_get(f"{url}/v1/schedule?limit=100")
    assert status == 200, body
    return {
        (d["start_ms"], d["end_ms"]): e["rate_w"]
        for d in body["decisions"]
        for e in d["entries"]
        if e["request_id"] == request_id
    }


def installed_after(log: Path, event: dict[str, Any] | None) -> list[list[Period]]:
    """The schedules the bridge installed on the charger after ``event`` (None: all)."""
    found = events(log)
    start = 0 if event is None else found.index(event) + 1
    return [
        [(p[0], p[1], p[2]) for p in e["periods"]]
        for e in found[start:]
        if e.get("event") == "charger_schedule_installed" and e["periods"]
    ]


def follows(log: Path, meter_id: str) -> dict[str, Any] | None:
    for e in events(log):
        if e.get("event") == "charger_follows_meter" and e.get("meter") == meter_id:
            return e
    return None


def only(
    periods: list[Period], own: dict[tuple[int, int], int], other: dict[tuple[int, int], int]
) -> bool:
    """Every period is ``own``'s decided rate, and in one at least the other request had a
    rate too (so the owner's sum, what an unlinked charger follows, would differ)."""
    return all(own.get((a, b)) == rate for a, b, rate in periods) and any(
        other.get((a, b), 0) > 0 for a, b, _ in periods
    )


def charger_took(sim_log: Path, periods: list[Period]) -> bool:
    """The simulated charge point logged installing this schedule (offsets from its start)."""
    first = periods[0][0]
    expected = [[a - first, float(rate)] for a, _, rate in periods]
    return any(
        e.get("event") == "sim_profile_installed" and e.get("id") == 2 and e["periods"] == expected
        for e in events(sim_log)
    )


def wait_following(loop: Loop, meter_id: str, own_request: str, other_request: str) -> None:
    """The bridge follows ``meter_id``: it installs a schedule made of that meter's request's
    rates alone, and the charger takes it over OCPP-J."""
    logs = [loop.bridge_log, loop.sim_log]
    wait_for(f"the bridge follows {meter_id}", lambda: follows(loop.bridge_log, meter_id), 30, logs)
    switched = follows(loop.bridge_log, meter_id)

    def own_rates_taken() -> bool:
        own, other = rates(loop.url, own_request), rates(loop.url, other_request)
        return any(
            only(periods, own, other) and charger_took(loop.sim_log, periods)
            for periods in installed_after(loop.bridge_log, switched)
        )

    wait_for(f"{meter_id}'s rates on the charger", own_rates_taken, 60, logs)


def test_the_council_links_the_charger_and_the_bridge_follows_the_link(loop: Loop) -> None:
    chain, url = loop.chain, loop.url
    logs = [loop.bridge_log, loop.sim_log]
    garage = send_request(chain, 0, GARAGE, GARAGE_W, GARAGE_WH)
    street = send_request(chain, 1, STREET, STREET_W, STREET_WH)

    # unlinked, no meter_id in the config: the owner's sum, as before links existed
    def summed() -> bool:
        a, b = rates(url, garage), rates(url, street)
        return any(
            all(rate == a.get((s, e), 0) + b.get((s, e), 0) for s, e, rate in periods)
            and any(a.get((s, e), 0) > 0 and b.get((s, e), 0) > 0 for s, e, _ in periods)
            for periods in installed_after(loop.bridge_log, None)
        )

    wait_for("the owner's summed rates on the charger", summed, 60, logs)
    code, _ = http_get(f"{url}/v1/devices/{CHARGER}")
    assert code == 404

    applied = propose_and_approve(chain, url, "link", "--meter", GARAGE, "--device", CHARGER)
    assert applied["kind"] == "LinkDevice"
    code, link = http_get(f"{url}/v1/devices/{CHARGER}")
    assert code == 200, link
    assert (link["meter_id"], link["meter_type"]) == (GARAGE, "EV")
    code, meter = http_get(f"{url}/v1/meters/{GARAGE}")
    assert meter["device_id"] == CHARGER
    wait_following(loop, GARAGE, garage, street)

    # the council moves the charger to the other meter: unlink, then link
    propose_and_approve(chain, url, "unlink", "--meter", GARAGE)
    propose_and_approve(chain, url, "link", "--meter", STREET, "--device", CHARGER)
    wait_following(loop, STREET, street, garage)
    code, listing = http_get(f"{url}/v1/meters")
    assert {m["meter_id"]: m["device_id"] for m in listing["meters"]} == {
        GARAGE: None,
        STREET: CHARGER,
    }
