"""``gridchain meterbridge run`` as a process: kill -9 mid-stream, node down, both back.

The bridge runs with a half-second interval against the simulator (RTU over TCP) and the fake
node, which commits when the test says.  The bridge is SIGKILLed while readings are stored and
a batch is in flight, the node is stopped, the bridge restarted, the node restarted; the test
then waits (with a deadline, asserting nothing about time) until newer readings are committed
and checks every meter's chain on the node: contiguous sequences, each record's interval
starting where the previous ended, no transaction rejected.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from gridchain.meterbridge.simulator import MeterSimulator
from gridchain.protocol.crypto import SigningKey
from tests.meterbridge.conftest import SIM_SPEED
from tests.meterbridge.fakenode import FakeNode
from tests.meterbridge.test_bridge import assert_chain
from tests.procs import free_test_port as free_port

DEADLINE_S = 30.0


def write_config(path: Path, node_url: str, sim_port: int, key: SigningKey) -> None:
    path.write_text(
        f"""
name = "kill9"
node_url = "{node_url}"
data_dir = "data"
interval_s = 0.5
meter_time_scale = {SIM_SPEED}
key_seed_hex = "{key.seed.hex()}"

[[buses]]
name = "lan"
kind = "rtu-over-tcp"
host = "127.0.0.1"
port = {sim_port}
timeout_s = 0.3

[[meters]]
meter_id = "h1-net"
bus = "lan"
slave_id = 1
profile = "eastron-sdm630"

[[meters]]
meter_id = "h1-ev"
bus = "lan"
slave_id = 3
profile = "generic"
""",
        encoding="utf-8",
    )


def start_bridge(config: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "gridchain.cli", "meterbridge", "run", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=log.open("ab"),
    )


async def _exited(process: subprocess.Popen[bytes]) -> None:
    """Wait for ``process`` to exit without blocking the event loop: the fake node runs on it,
    and a bridge stopping with a batch in flight waits for the node's answer."""
    await asyncio.to_thread(process.wait, 10)


async def wait_until(what: str, check: Callable[[], bool], node: FakeNode | None = None) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_S
    while not check():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)
        if node is not None:
            node.commit()


async def test_kill_9_and_node_outage_leave_every_interval_on_chain_once(
    tmp_path: Path,
    simulator: tuple[MeterSimulator, int],
    bridge_key: SigningKey,
) -> None:
    _, sim_port = simulator
    node = FakeNode()
    for meter_id in ("h1-net", "h1-ev"):
        node.register_meter(meter_id, bridge_key.public_key)
    node_port = free_port()
    await node.start(node_port)
    config = tmp_path / "bridge.toml"
    write_config(config, node.url, sim_port, bridge_key)
    log = tmp_path / "bridge.log"

    bridge = start_bridge(config, log)
    try:
        # some readings committed, then a batch posted and left uncommitted
        await wait_until("3 committed", lambda: len(node.meters["h1-net"].readings) >= 3, node)
        await wait_until("a batch in flight", lambda: bool(node.mempool))
        bridge.send_signal(signal.SIGKILL)
        await _exited(bridge)
        node.drop_mempool()  # the node restarts too, losing the batch in flight
        await node.stop()

        bridge = start_bridge(config, log)
        await asyncio.sleep(1.5)  # the bridge reads a few intervals while the node is down
        assert bridge.poll() is None, log.read_text()
        await node.start(node_port)
        target = len(node.meters["h1-net"].readings) + 6
        await wait_until(
            "readings after the outage",
            lambda: min(len(m.readings) for m in node.meters.values()) >= target,
            node,
        )
    finally:
        bridge.terminate()
        await _exited(bridge)
        await node.stop()
    assert node.rejections == []
    for meter in node.meters.values():
        assert_chain(meter.readings, len(meter.readings))
