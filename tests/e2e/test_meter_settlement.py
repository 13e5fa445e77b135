"""Issue 5 end to end: a 4-validator testnet with the meter simulator and one bridge per peer.

Peer A sells PV energy and peer C buys it for a slot a few seconds ahead; the bridges read the
simulated meters over Modbus (RTU over TCP), sign and submit the readings; after the slot and
its grace period the chain settles the contract from those readings, and `gridchain wallet
receipts` shows the same receipt on every validator.  Whether the simulated PV produced depends
on the time of day, so the test checks the settlement arithmetic against the receipt's own
readings rather than a fixed outcome.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.procs import REPO, free_port_block

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("meters_e2e")]

SLOT_S = 12
PENALTY_MC_PER_KWH = 100_000  # the genesis default


def gridchain(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GRIDCHAIN_PASSWORD": "testnet"}
    return subprocess.run(
        [sys.executable, "-m", "gridchain", *argv],
        check=False,
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=timeout,
    )


def receipts(directory: Path, wallet: str, node: str) -> list[dict[str, Any]]:
    done = gridchain(
        "wallet", "receipts", "--json", "--wallet", str(directory / "wallets" / f"{wallet}.json"),
        "--node", node,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    found: list[dict[str, Any]] = json.loads(done.stdout)["receipts"]
    return found


def test_trades_settle_from_simulated_meter_readings(tmp_path: Path) -> None:
    directory = tmp_path / "tn"
    api, p2p, sim = free_port_block(4), free_port_block(4), free_port_block(1)
    started = gridchain(
        "testnet", "up", "--dir", str(directory), "--with-meters",
        "--slot-seconds", str(SLOT_S), "--gate-closure-seconds", "3", "--grace-seconds", "6",
        "--meter-interval-s", "2", "--base-api-port", str(api), "--base-p2p-port", str(p2p),
        "--meter-sim-port", str(sim), "--json",
    )  # fmt: skip
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        nodes = [f"http://127.0.0.1:{api + i}" for i in range(4)]
        slot = time.time_ns() // 1_000_000 // (SLOT_S * 1000) + 2
        common = ["--slot", str(slot), "--quantity", "5Wh", "--json"]
        sell = gridchain(
            "wallet", "order", "sell", "--wallet", str(directory / "wallets" / "peer-a.json"),
            "--node", nodes[0], "--price", "120", "--device", "PV", *common,
        )  # fmt: skip
        assert sell.returncode == 0, sell.stderr
        buy = gridchain(
            "wallet", "order", "buy", "--wallet", str(directory / "wallets" / "peer-c.json"),
            "--node", nodes[2], "--price", "130", "--device", "Load", *common,
        )  # fmt: skip
        assert buy.returncode == 0, buy.stderr

        deadline = time.monotonic() + 3 * SLOT_S + 60
        found: list[dict[str, Any]] = []
        while time.monotonic() < deadline and not found:
            time.sleep(2)
            found = receipts(directory, "peer-c", nodes[1])
        assert found, "no settlement receipt after the slot and its grace period"
        receipt = found[0]
        assert receipt["slot"] == slot
        assert receipt["quantity_wh"] == 5
        seller, buyer = receipt["seller_reading"], receipt["buyer_reading"]
        assert seller["metered_wh"] == seller["end_wh"] - seller["start_wh"]
        assert buyer["metered_wh"] == buyer["end_wh"] - buyer["start_wh"]
        assert buyer["metered_wh"] > 0, "the simulated household load was not metered"
        assert receipt["delivered_wh"] == min(5, seller["metered_wh"])
        assert receipt["shortfall_wh"] == 5 - receipt["delivered_wh"]
        assert receipt["paid_mc"] == receipt["price_mc_per_kwh"] * receipt["delivered_wh"] // 1000
        assert receipt["fine_mc"] == receipt["shortfall_wh"] * PENALTY_MC_PER_KWH // 1000
        assert receipt["escrow_mc"] == receipt["paid_mc"] + receipt["released_mc"]
        for node in nodes:  # the same receipt on every validator
            assert receipts(directory, "peer-a", node) == found
    finally:
        gridchain("testnet", "down", "--dir", str(directory))
