"""kill -9 a meter bridge in the middle of a batch while its node is down; once both are back,
every interval is on the real chain exactly once (issue 5).

A solo testnet with meters runs as real processes.  After peer-a's bridge has committed some
readings, the validator is stopped (the bridge keeps reading, storing and retrying), then the
bridge is killed with SIGKILL while it holds unsent readings.  Both are restarted.  The chain's
readings of every peer-a meter must then form one unbroken sequence from 0 whose intervals
follow each other exactly (each interval's start is the previous one's end): no interval lost,
none recorded twice, and the outage covered.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.procs import REPO, die_with_parent, free_port_block, http_get, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("meters_e2e")]

METERS = ("peer-a-net", "peer-a-pv", "peer-a-battery")


def gridchain(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gridchain", *argv],
        check=False,
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "GRIDCHAIN_PASSWORD": "testnet"},
        timeout=120,
    )


def start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "gridchain", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=REPO,
            env={**os.environ, "GRIDCHAIN_PASSWORD": "testnet"},
            preexec_fn=die_with_parent,  # noqa: PLW1509 - sets only the parent-death signal
        )


def chain_readings(api: str, meter_id: str) -> list[dict[str, Any]]:
    status, body = http_get(f"{api}/v1/meters/{meter_id}/readings?from_seq=0&limit=1000")
    assert status == 200, body
    readings: list[dict[str, Any]] = body["readings"]
    return readings


def last_sequence(api: str, meter_id: str) -> int:
    status, body = http_get(f"{api}/v1/meters/{meter_id}", timeout=2.0)
    return -1 if status != 200 or body["last_sequence"] is None else int(body["last_sequence"])


def test_bridge_kill9_during_node_outage_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    directory = tmp_path / "tn"
    api_port, p2p, sim = free_port_block(1), free_port_block(1), free_port_block(1)
    api = f"http://127.0.0.1:{api_port}"
    up = gridchain(
        "testnet", "up", "--dir", str(directory), "--consensus", "solo", "--with-meters",
        "--meter-interval-s", "1", "--base-api-port", str(api_port), "--base-p2p-port", str(p2p),
        "--meter-sim-port", str(sim), "--json",
    )  # fmt: skip
    restarted: list[subprocess.Popen[bytes]] = []
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        state = json.loads((directory / "testnet.json").read_text())
        node = state["validators"][0]
        bridge = next(m for m in state["meters"] if m["name"] == "bridge-peer-a")
        wait_until(lambda: min(last_sequence(api, m) for m in METERS) >= 2, 60, "first readings")

        os.kill(node["pid"], signal.SIGTERM)  # node outage: the bridge stores and retries
        wait_until(lambda: http_get(api + "/health", timeout=0.5)[0] == 0, 30, "node down")
        time.sleep(3.5)  # several intervals read and stored while the node is away
        os.kill(bridge["pid"], signal.SIGKILL)  # mid-batch: unsent readings in its LevelDB
        time.sleep(1.5)  # an interval passes with no bridge at all

        restarted.append(start(["node", "run", "--config", node["config"]], tmp_path / "node.log"))
        wait_until(lambda: http_get(api + "/health", timeout=0.5)[0] == 200, 60, "node back")
        before = {m: last_sequence(api, m) for m in METERS}
        restarted.append(
            start(["meterbridge", "run", "--config", bridge["config"]], tmp_path / "bridge.log")
        )
        # Back in step: every meter moves past where it was when the outage ended.
        wait_until(
            lambda: all(last_sequence(api, m) >= before[m] + 3 for m in METERS), 60, "catch-up"
        )
        for meter_id in METERS:
            readings = chain_readings(api, meter_id)
            sequences = [r["sequence"] for r in readings]
            assert sequences == list(range(len(readings))), f"{meter_id}: gaps or duplicates"
            for prev, cur in itertools.pairwise(readings):
                assert cur["prev_hash"] == prev["hash"]
                assert cur["interval_start_ms"] == prev["interval_end_ms"], (
                    f"{meter_id}: interval {cur['sequence']} does not follow {prev['sequence']}"
                )
                assert cur["import_wh"] >= prev["import_wh"]
                assert cur["export_wh"] >= prev["export_wh"]
            span = readings[-1]["interval_end_ms"] - readings[0]["interval_start_ms"]
            assert span > 5_000, "the readings cover the outage"
    finally:
        for proc in restarted:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=20)
        gridchain("testnet", "down", "--dir", str(directory))
