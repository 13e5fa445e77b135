"""The simulator and the bridge's poller over a real serial line: a socat pty pair at 9600 8N1.

socat joins two pseudo-terminals; the simulator serves RTU on one end and the bridge opens the
other as it would /dev/ttyUSB0.  The simulated clock is frozen so the registers hold known
values and the decoded measurement can be compared exactly.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator

import pytest

from gridchain.meterbridge.config import SerialBus
from gridchain.meterbridge.metrics import BridgeMetrics
from gridchain.meterbridge.modbus import BusClient, MeterUnavailable
from gridchain.meterbridge.profiles import load_profile
from gridchain.meterbridge.simulator import MeterSimulator, SimClock, SimMeter
from tests.meterbridge.conftest import T0_MS

SOCAT = shutil.which("socat")
pytestmark = pytest.mark.skipif(SOCAT is None, reason="socat is not installed")


@pytest.fixture
def pty_pair() -> Iterator[tuple[str, str]]:
    assert SOCAT is not None
    proc = subprocess.Popen(
        [SOCAT, "-d", "-d", "pty,raw,echo=0", "pty,raw,echo=0"],
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    paths: list[str] = []
    while len(paths) < 2:
        line = proc.stderr.readline()
        if not line:
            proc.kill()
            pytest.fail("socat exited before opening two ptys")
        if match := re.search(r"PTY is (\S+)", line):
            paths.append(match.group(1))
    try:
        yield paths[0], paths[1]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
async def serial_sim(pty_pair: tuple[str, str]) -> AsyncIterator[tuple[MeterSimulator, str]]:
    server_end, client_end = pty_pair
    meters = [
        SimMeter(1, load_profile("eastron-sdm630"), "net", import_wh=1_234_000, export_wh=56_000),
        SimMeter(2, load_profile("generic"), "ev", import_wh=271_000),
    ]
    sim = MeterSimulator(meters, clock=SimClock(speed=0.0, start_ms=T0_MS), line_baud=9600)
    await sim.start_serial(server_end, baudrate=9600)
    yield sim, client_end
    await sim.stop()


async def test_poller_reads_meters_over_a_pty_pair_at_9600_8n1(
    serial_sim: tuple[MeterSimulator, str],
) -> None:
    sim, device = serial_sim
    bus = SerialBus(name="rs485", kind="serial", port=device, timeout_s=1.0, retries=2)
    assert (bus.baudrate, bus.bytesize, bus.parity, bus.stopbits) == (9600, 8, "N", 1)
    client = BusClient(bus, BridgeMetrics())
    try:
        net = await client.read_meter("net", 1, load_profile("eastron-sdm630"))
        ev = await client.read_meter("ev", 2, load_profile("generic"))
    finally:
        await client.close()
    expected_net_w = round(1000 * sim.meters[1].household.power_kw("net", T0_MS))
    assert (net.import_wh, net.export_wh, net.voltage_dv) == (1_234_000, 56_000, 2300)
    assert abs(net.power_w - expected_net_w) <= 1  # float32 of the W value
    assert (ev.import_wh, ev.export_wh, ev.power_w, ev.voltage_dv) == (271_000, 0, 0, 2300)
    assert (
        client.metrics.value("meterbridge_modbus_requests_total", {"bus": "rs485", "outcome": "ok"})
        == 4
    )  # 3 blocks for the SDM630, 1 for the generic meter


async def test_silent_slave_on_the_line_is_retried_then_unavailable(
    serial_sim: tuple[MeterSimulator, str],
) -> None:
    _, device = serial_sim
    bus = SerialBus(name="rs485", kind="serial", port=device, timeout_s=0.3, retries=1)
    client = BusClient(bus, BridgeMetrics())
    try:
        with pytest.raises(MeterUnavailable):
            await client.read_meter("ghost", 7, load_profile("generic"))
        # the line still works for the others afterwards
        await asyncio.sleep(0)
        ok = await client.read_meter("ev", 2, load_profile("generic"))
    finally:
        await client.close()
    assert ok.import_wh == 271_000
    m = client.metrics
    assert m.value("meterbridge_modbus_retries_total", {"bus": "rs485", "meter": "ghost"}) == 1
    assert m.value("meterbridge_modbus_requests_total", {"bus": "rs485", "outcome": "timeout"}) == 2
