"""Issue 15: a new household joins a running community through the council, end to end.

Four PBFT validators (``gridchain node run``) whose genesis names a council of three approving
by two.  The new peer makes its own keys on its device (``gridchain node init``); council
member 1 proposes its admission and its PV meter (``gridchain gov propose``), member 2
approves each (``gridchain gov approve``); the chain applies them at the second approval.  The
household's bridge (``gridchain meterbridge run``) then reads its PV meter on the simulator
(``gridchain meterbridge simulate``) and its readings are accepted; the household sells
energy to peer-a in a slot a few seconds ahead, the orders match, and after the slot and its
grace period the chain settles the contract from the household's own readings.

Every step is a command a person types; the checks read the chain through the API and
``--json`` output.  Whether the simulated PV delivered the whole quantity is not asserted:
the receipt's arithmetic is, against its own readings.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.procs import (
    PASSWORD,
    REPO,
    Chain,
    GridchainChild,
    free_port_block,
    http_get,
    make_chain,
    running_cluster,
    wait_until,
)

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("gov_e2e")]

SLOT_MS = 12_000
PENALTY_MC_PER_KWH = 100_000  # the genesis default
PV_SLAVE = 2  # `simulate --household PV`: net meter at 1, PV at 2


def gridchain(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GRIDCHAIN_PASSWORD": PASSWORD}
    return subprocess.run(
        [sys.executable, "-m", "gridchain", *argv],
        check=False,
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=timeout,
    )


def ok_json(*argv: str) -> dict[str, Any]:
    done = gridchain(*argv)
    assert done.returncode == 0, f"{argv}: {done.stdout}{done.stderr}"
    found: dict[str, Any] = json.loads(done.stdout)
    return found


@pytest.fixture
def community(tmp_path: Path) -> Iterator[Chain]:
    chain = make_chain(
        tmp_path / "chain",
        validators=4,
        engine="pbft",
        block_interval_ms=200,
        council=3,
        threshold=2,
        slot_length_ms=SLOT_MS,
        gate_closure_ms=3000,
        settlement_grace_ms=5000,
    )
    with running_cluster(chain):
        yield chain


def bridge_config(path: Path, *, node_url: str, seed_hex: str, sim_port: int, meter: str) -> None:
    path.write_text(
        f"""
name = "peer-new"
node_url = "{node_url}"
data_dir = "bridge-data"
interval_s = 1
key_seed_hex = "{seed_hex}"

[agent_api]
host = "127.0.0.1"
port = {free_port_block(1)}

[[buses]]
name = "sim"
kind = "rtu-over-tcp"
host = "127.0.0.1"
port = {sim_port}
timeout_s = 0.5

[[meters]]
meter_id = "{meter}"
bus = "sim"
slave_id = {PV_SLAVE}
profile = "eastron-sdm120"
""",
        encoding="utf-8",
    )


def propose_and_approve(chain: Chain, node: str, *action: str) -> dict[str, Any]:
    """Member 1 proposes (1 of 2: open), member 2 approves (applied); the applied proposal."""
    council = [str(chain.wallet_path(f"council-{i}")) for i in (1, 2, 3)]
    proposed = ok_json("gov", "propose", *action, "--wallet", council[0], "--node", node, "--json")
    assert proposed["status"] == "committed"
    assert proposed["proposal"]["status"] == "open"
    assert len(proposed["proposal"]["approvals"]) == 1
    proposal_id = proposed["proposal_id"]
    approved = ok_json(
        "gov", "approve", proposal_id, "--wallet", council[1], "--node", node, "--json"
    )
    assert approved["proposal"]["status"] == "applied", approved
    assert len(approved["proposal"]["approvals"]) == 2
    # a third approval is refused by the chain, with its code, and changes nothing
    late = gridchain(
        "gov", "approve", proposal_id, "--wallet", council[2], "--node", node, "--json"
    )
    assert late.returncode == 1
    assert json.loads(late.stdout)["error"]["code"] == "proposal_closed"
    found: dict[str, Any] = approved["proposal"]
    return found


def test_a_household_admitted_by_the_council_meters_trades_and_settles(
    community: Chain, tmp_path: Path
) -> None:
    chain = community
    nodes = [chain.api_url(i) for i in range(4)]
    device = tmp_path / "new-peer"
    admission = ok_json(
        "node", "init", "--out", str(device), "--name", "peer-new", "--fast-kdf", "--json"
    )
    household = admission["participant"]
    wallet = str(device / "wallet.json")

    # not admitted yet: the chain refuses its order
    code, account = http_get(f"{nodes[0]}/v1/accounts/{household['address']}")
    assert code == 200
    assert account["registered"] is False

    admitted = propose_and_approve(
        chain, nodes[0], "admit", "--public-key", household["public_key"], "--name", "peer-new"
    )
    assert admitted["kind"] == "RegisterParticipant"
    meter_id = "peer-new-pv"
    registered = propose_and_approve(
        chain, nodes[1], "meter", "--meter-id", meter_id, "--owner", household["address"],
        "--type", "PV", "--bridge-key", admission["bridge"]["public_key"],
        "--profile", "eastron-sdm120",
    )  # fmt: skip
    assert registered["record"]["meter_id"] == meter_id
    listed = ok_json("gov", "list", "--node", nodes[2], "--json")
    assert [p["status"] for p in listed["proposals"]] == ["applied", "applied"]
    assert listed["threshold"] == 2
    code, participants = http_get(f"{nodes[3]}/v1/participants")
    assert code == 200
    assert household["address"] in {p["address"] for p in participants["participants"]}

    sim_port = free_port_block(1)
    keys = tomllib.loads((device / "keys.toml").read_text(encoding="utf-8"))
    config = device / "bridge.toml"
    bridge_config(
        config,
        node_url=nodes[3],
        seed_hex=keys["bridge"]["key_seed_hex"],
        sim_port=sim_port,
        meter=meter_id,
    )
    sim_args = ["--tcp", f"127.0.0.1:{sim_port}", "--household", "PV", "--clock", "daylight"]
    children = [GridchainChild(["meterbridge", "simulate", *sim_args], tmp_path / "sim.log")]
    try:
        children.append(
            GridchainChild(["meterbridge", "run", "--config", str(config)], tmp_path / "bridge.log")
        )

        def readings_accepted() -> bool:
            code, meter = http_get(f"{nodes[0]}/v1/meters/{meter_id}")
            return code == 200 and (meter.get("last_sequence") or 0) >= 2

        wait_until(readings_accepted, 90, "the new household's bridge readings on chain")

        slot = time.time_ns() // 1_000_000 // SLOT_MS + 2
        common = ["--slot", str(slot), "--quantity", "5Wh", "--json"]
        sell = ok_json(
            "wallet", "order", "sell", "--wallet", wallet, "--node", nodes[0],
            "--price", "120", "--device", "PV", *common,
        )  # fmt: skip
        assert sell["status"] == "committed", sell
        buy = ok_json(
            "wallet", "order", "buy", "--wallet", str(chain.wallet_path("peer-a")),
            "--node", nodes[2], "--price", "130", "--device", "Load", *common,
        )  # fmt: skip
        assert buy["status"] == "committed", buy

        found: list[dict[str, Any]] = []

        def settled() -> bool:
            nonlocal found
            done = gridchain("wallet", "receipts", "--json", "--wallet", wallet, "--node", nodes[1])
            found = json.loads(done.stdout).get("receipts", []) if done.returncode == 0 else []
            return bool(found)

        wait_until(settled, 3 * SLOT_MS / 1000 + 90, "a settlement receipt for the household")
        receipt = found[0]
        assert receipt["slot"] == slot
        assert receipt["quantity_wh"] == 5
        seller = receipt["seller_reading"]
        assert seller["metered_wh"] == seller["end_wh"] - seller["start_wh"]
        assert receipt["delivered_wh"] == min(5, seller["metered_wh"])
        assert receipt["paid_mc"] == receipt["price_mc_per_kwh"] * receipt["delivered_wh"] // 1000
        assert receipt["fine_mc"] == receipt["shortfall_wh"] * PENALTY_MC_PER_KWH // 1000
    finally:
        for child in reversed(children):
            child.stop()
