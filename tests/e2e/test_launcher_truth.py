"""`testnet up/down/status` tell the truth, with real processes (issue 15, item 5).

A port another process holds fails `up` with a message naming the process and the port, and
nothing is left running; `down` stops the meter simulator with SIGTERM (nothing needed
SIGKILL) and says so; `status` shows the simulator, the bridges and the quorum; a testnet
restarted with meters goes on metering: the first reading after the restart is OK, because
the simulated meters kept their registers in the testnet directory.
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.procs import REPO, free_port_block, http_get, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("meters_e2e")]

METER = "peer-a-pv"


def gridchain(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gridchain", *argv],
        check=False,
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "GRIDCHAIN_PASSWORD": "testnet"},
        timeout=180,
    )


def gone(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    return not status.exists() or "zombie" in status.read_text().lower()


def readings(api: str) -> list[dict[str, Any]]:
    status, body = http_get(f"{api}/v1/meters/{METER}/readings?limit=500", timeout=2.0)
    return list(body["readings"]) if status == 200 else []


def last_sequence(api: str) -> int:
    status, body = http_get(f"{api}/v1/meters/{METER}", timeout=2.0)
    return -1 if status != 200 or body["last_sequence"] is None else int(body["last_sequence"])


@pytest.fixture
def solo_with_meters(tmp_path: Path) -> Iterator[tuple[Path, list[str], str]]:
    """A solo testnet directory with meters (created, not started) and its `up` flags."""
    directory = tmp_path / "tn"
    api_port, p2p, sim = free_port_block(1), free_port_block(1), free_port_block(1)
    flags = ["--dir", str(directory), "--meter-interval-s", "1"]
    flags += ["--base-api-port", str(api_port), "--base-p2p-port", str(p2p)]
    flags += ["--meter-sim-port", str(sim)]
    created = gridchain("testnet", "up", *flags, "--consensus", "solo", "--with-meters")
    assert created.returncode == 0, created.stdout + created.stderr
    assert gridchain("testnet", "down", "--dir", str(directory)).returncode == 0
    yield directory, flags, f"http://127.0.0.1:{api_port}"
    gridchain("testnet", "down", "--dir", str(directory))


def test_busy_simulator_port_fails_up_naming_it(
    solo_with_meters: tuple[Path, list[str], str],
) -> None:
    directory, flags, _ = solo_with_meters
    sim_port = int(flags[flags.index("--meter-sim-port") + 1])
    with socket.socket() as stranger:  # someone else's simulator on our simulator's port
        # As a real server does (asyncio's does): the fixture's own run left connections to
        # this port in TIME_WAIT, which a plain bind would trip over.
        stranger.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        stranger.bind(("127.0.0.1", sim_port))
        stranger.listen()
        done = gridchain("testnet", "up", "--dir", str(directory), "--with-meters")
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"meter-simulator port 127.0.0.1:{sim_port}" in done.stderr
    assert "already in use" in done.stderr
    assert not (directory / "testnet.json").exists()  # nothing started, nothing to stop


def test_a_process_that_dies_at_start_fails_up_and_the_others_are_stopped(
    solo_with_meters: tuple[Path, list[str], str],
) -> None:
    """peer-b's bridge cannot start (its config names a profile that does not exist): `up`
    fails naming it, and the validator, simulator and other bridges it started are stopped."""
    directory, _, _ = solo_with_meters
    config = directory / "bridges" / "peer-b" / "config.toml"
    config.write_text(config.read_text().replace('profile = "generic"', 'profile = "no-such"'))
    done = gridchain("testnet", "up", "--dir", str(directory), "--with-meters")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "meter bridge bridge-peer-b" in done.stderr
    assert "exited during start" in done.stderr
    assert not (directory / "testnet.json").exists()
    leftovers = subprocess.run(
        ["pgrep", "-f", str(directory.resolve())], capture_output=True, text=True, check=False
    )
    assert leftovers.stdout.split() == []


def test_conflicting_flags_are_refused(solo_with_meters: tuple[Path, list[str], str]) -> None:
    directory, _, _ = solo_with_meters
    done = gridchain(
        "testnet", "up", "--dir", str(directory), "--consensus", "pbft", "--validators", "4"
    )
    assert done.returncode == 1
    assert "--validators 4 (it has 1)" in done.stderr
    assert "--consensus pbft (it has solo)" in done.stderr
    assert not (directory / "testnet.json").exists()


def test_down_stops_the_simulator_and_restarted_meters_keep_metering(
    solo_with_meters: tuple[Path, list[str], str],
) -> None:
    directory, _, api = solo_with_meters
    started = gridchain("testnet", "up", "--dir", str(directory), "--with-meters", "--json")
    assert started.returncode == 0, started.stdout + started.stderr
    sim_pid = next(
        p["pid"] for p in json.loads(started.stdout)["validators"] if p["name"] == "meter-simulator"
    )
    wait_until(lambda: last_sequence(api) >= 2, 60, "first readings")

    st = gridchain("testnet", "status", "--dir", str(directory), "--json")
    doc = json.loads(st.stdout)
    assert {m["name"] for m in doc["meters"]} >= {"meter-simulator", "bridge-peer-a"}
    assert all(m["running"] for m in doc["meters"])
    assert doc["quorum"] == {"engine": "solo", "validators": 1, "up": 1, "needed": 1, "ok": True}

    stopped = gridchain("testnet", "down", "--dir", str(directory), "--json")
    report = json.loads(stopped.stdout)
    assert "meter-simulator" in report["stopped"]
    assert report["killed"] == []  # the simulator answered SIGTERM
    assert gone(sim_pid)
    assert (directory / "bridges" / "registers.json").exists()

    restart_ms = time.time_ns() // 1_000_000
    again = gridchain("testnet", "up", "--dir", str(directory), "--with-meters")
    assert again.returncode == 0, again.stdout + again.stderr
    wait_until(
        lambda: sum(r["interval_end_ms"] > restart_ms for r in readings(api)) >= 3,
        60,
        "three readings after the restart",
    )
    after = [r for r in readings(api) if r["interval_end_ms"] > restart_ms]
    # the first reading after the restart continues the registers: OK, not unavailable
    assert [r["status"] for r in after] == ["ok"] * len(after), after
    for prev, cur in itertools.pairwise(after):
        assert cur["export_wh"] >= prev["export_wh"]


#: 2026-12-04 01:00 UTC: hours before sunrise on the UTC clock, even at 60x for a minute.
NIGHT_MS = 1_796_342_400_000 + 3_600_000


@pytest.mark.parametrize(("clock", "sunny"), [("daylight", True), ("utc", False)])
def test_simulator_clock_at_a_night_start(tmp_path: Path, clock: str, sunny: bool) -> None:
    """A night-time start injected with --start-ms: the daylight clock meters PV, the UTC
    clock does not; SIGTERM stops the simulator, which writes its registers last."""
    registers = tmp_path / "registers.json"
    argv = [sys.executable, "-m", "gridchain", "meterbridge", "simulate", "--tcp"]
    argv += [f"127.0.0.1:{free_port_block(1)}", "--household", "PV,Battery,Load"]
    argv += ["--speed", "60", "--start-ms", str(NIGHT_MS), "--clock", clock]
    argv += ["--registers", str(registers)]
    with (tmp_path / "sim.log").open("wb") as log:
        sim = subprocess.Popen(argv, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(
            lambda: (
                registers.exists() and json.loads(registers.read_text())["2"]["export_wh"] > 0
                if sunny
                else registers.exists()
            ),
            30,
            "registers written",
        )
    finally:
        sim.terminate()
        assert sim.wait(timeout=20) == 0  # SIGTERM is a clean stop, not a kill
    pv = json.loads(registers.read_text())["2"]  # slave 2: the household's PV meter
    if sunny:
        assert pv["export_wh"] > 0
    else:
        assert pv["export_wh"] == 0
