"""The README's main job, end to end: `gridchain testnet run` on a fresh directory.

It must create a 4-validator PBFT chain, start each validator as its own process behind a
gateway (the validators take client transactions only through it), with the meter simulator and
a bridge per peer, show three wallet transfers (each through the gateway) committing, the same
ledger on every validator, a trade settled from meter readings, and stop exactly what it
started.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.procs import REPO, free_port_block

pytestmark = pytest.mark.e2e


def gridchain(*argv: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "GRIDCHAIN_PASSWORD"}
    return subprocess.run(
        [sys.executable, "-m", "gridchain", *argv],
        check=False,
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=timeout,
    )


def test_testnet_run_shows_transfers_committing(tmp_path: Path) -> None:
    directory = tmp_path / "tn"
    ports = ["--base-api-port", str(free_port_block(4)), "--base-p2p-port", str(free_port_block(4))]
    ports += ["--meter-sim-port", str(free_port_block(1))]
    ports += ["--base-gateway-port", str(free_port_block(1))]
    done = gridchain("testnet", "run", "--dir", str(directory), "--exit-after-demo", *ports)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "documented testnet password 'testnet'" in out
    assert out.count("status  committed") == 3
    ledger = out.split("== the ledger on every validator ==")[1].strip().splitlines()
    rows = [line.split() for line in ledger[1:5]]
    assert len(rows) == 4
    assert len({tuple(row[1:]) for row in rows}) == 1, ledger  # same height, head, root, balances
    assert int(rows[0][1]) >= 3
    # The C&D part: peer-b's EV charge request scheduled interval by interval.
    assert "EV charging scheduled on chain" in out
    setpoints = out.split("the setpoints the chain decided")[1].split("==")[0].splitlines()
    assert sum(" charge " in line for line in setpoints) >= 2, out
    # The market part: a trade settled from the simulated meters' readings, shown as a receipt.
    assert "settled from meter readings" in out
    receipt_lines = out.split("peer-c's receipts")[1].splitlines()
    assert any(" bought " in line for line in receipt_lines), out
    assert "stopped meter-simulator, bridge-peer-a, bridge-peer-b, bridge-peer-c, " in out
    assert "gateway-1, node-1, node-2, node-3, node-4" in out
    assert "each sent through a gateway" in out
    assert not (directory / "testnet.json").exists()


def test_up_status_down(tmp_path: Path) -> None:
    directory = tmp_path / "tn"
    ports = ["--base-api-port", str(free_port_block(4)), "--base-p2p-port", str(free_port_block(4))]
    started = gridchain("testnet", "up", "--dir", str(directory), "--json", *ports)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        pids = [v["pid"] for v in json.loads(started.stdout)["validators"]]
        again = gridchain("testnet", "up", "--dir", str(directory))
        assert again.returncode == 1
        assert "already running" in again.stderr
        st = gridchain("testnet", "status", "--dir", str(directory), "--json")
        assert st.returncode == 0, st.stderr
        rows = json.loads(st.stdout)["validators"]
        assert [r["name"] for r in rows] == ["node-1", "node-2", "node-3", "node-4"]
        for row in rows:
            assert row["running"] is True
            assert row["height"] == 0
            assert row["view"] == 0
            assert len(row["head_hash"]) == 64
    finally:
        stopped = gridchain("testnet", "down", "--dir", str(directory), "--json")
    assert json.loads(stopped.stdout) == {
        "stopped": ["node-1", "node-2", "node-3", "node-4"],
        "killed": [],
    }
    for pid in pids:
        assert (
            not Path(f"/proc/{pid}").exists()
            or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
        )
