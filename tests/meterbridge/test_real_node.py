"""A bad meter against a real node process (issue 12): the node's own refusal, no fake.

The meters are pymodbus's server (the simulator), the chain is a solo validator started with
``gridchain node run``; the bridge talks to it only through its HTTP API.  The node refuses a
reading whose registers are below the chain's (``decreasing_register``) at admission; these
tests show that a fresh store never signs such a reading, and that one the store already holds
is set aside for its meter alone while the other meters keep committing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from gridchain.api.client import NodeClient
from gridchain.genesis.builder import GenesisBundle
from gridchain.meterbridge.bridge import Bridge
from gridchain.meterbridge.simulator import MeterSimulator
from gridchain.protocol.crypto import SigningKey
from gridchain.protocol.meter import ReadingRecord, ReadingStatus, sign_reading
from tests.meterbridge.conftest import INTERVAL_MS, METERS, MakeConfig, running_simulator
from tests.meterbridge.test_bridge import tcp_bus
from tests.procs import NodeProcess, make_chain, node_for

pytestmark = [pytest.mark.integration]

METER_TYPES = {"h1-net": "Netmeter", "h1-pv": "PV", "h1-ev": "EV", "h1-batt": "Battery"}


@pytest.fixture
def node(tmp_path: Path, bridge_key: SigningKey) -> Iterator[NodeProcess]:
    def meters(bundle: GenesisBundle) -> dict[str, Any]:
        owner = bundle.participants[0].address
        return {
            "meters": [
                {
                    "meter_id": meter_id,
                    "owner": owner,
                    "meter_type": METER_TYPES[meter_id],
                    "bridge_public_key": bridge_key.public_key.hex(),
                    "profile": profile,
                }
                for meter_id, _, profile in METERS
            ]
        }

    chain = make_chain(tmp_path / "chain", block_interval_ms=100, genesis_changes=meters)
    process = node_for(chain).start()
    yield process
    process.terminate()


@pytest.fixture
async def sim() -> AsyncIterator[tuple[MeterSimulator, int]]:
    async with running_simulator(start_ms=time.time_ns() // 1_000_000) as (simulator, port):
        simulator.meters[1].import_wh = 10_000.0  # the net meter has counted 10 kWh so far
        simulator.meters[2].export_wh = 10_000.0  # the PV meter 10 kWh of export
        yield simulator, port


def ticks() -> Iterator[int]:
    """Clock-aligned interval ends in the recent past (the chain bounds them by block time)."""
    tick = (time.time_ns() // 1_000_000 // INTERVAL_MS - 60) * INTERVAL_MS
    while True:
        tick += INTERVAL_MS
        yield tick


async def send_until_committed(bridge: Bridge, rounds: int = 300) -> None:
    """Run the sender until everything is committed (each round waits for a block or two)."""
    for _ in range(rounds):
        await bridge.send_once()
        if bridge.unsent_count() == 0 and bridge.store.inflight() is None:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{bridge.unsent_count()} readings still unsent")


async def chain_readings(url: str, meter_id: str) -> list[Any]:
    async with NodeClient(url) as client:
        return await client.readings(meter_id)


async def test_a_fresh_store_after_a_meter_swap_continues_every_meter(
    node: NodeProcess, sim: tuple[MeterSimulator, int], make_config: MakeConfig, tmp_path: Path
) -> None:
    simulator, port = sim
    tick = ticks()
    async with Bridge(make_config(node.api_url, tcp_bus(port))) as old:
        await old.reconcile()
        await old.poll_once(next(tick))
        await send_until_committed(old)
    before = (await chain_readings(node.api_url, "h1-pv"))[-1]
    assert before.export_wh >= 10_000
    simulator.meters[2].import_wh = simulator.meters[2].export_wh = 0.0  # a new PV meter
    config = make_config(node.api_url, tcp_bus(port), data_dir=tmp_path / "new-card")
    async with Bridge(config) as new:
        await new.reconcile()
        for _ in range(2):
            await new.poll_once(next(tick))
        await send_until_committed(new)
    for meter_id, _, _ in METERS:
        assert len(await chain_readings(node.api_url, meter_id)) == 3, meter_id
    pv = await chain_readings(node.api_url, "h1-pv")
    assert [r.status for r in pv] == ["ok", "unavailable", "unavailable"]
    assert {(r.import_wh, r.export_wh) for r in pv} == {(before.import_wh, before.export_wh)}


async def test_a_refused_reading_never_blocks_the_other_meters(
    node: NodeProcess,
    sim: tuple[MeterSimulator, int],
    make_config: MakeConfig,
    bridge_key: SigningKey,
) -> None:
    _, port = sim
    tick = ticks()
    async with Bridge(make_config(node.api_url, tcp_bus(port))) as bridge:
        await bridge.reconcile()
        await bridge.poll_once(next(tick))
        await send_until_committed(bridge)
        good = bridge.store.get("h1-net", 0)
        chain_id = bridge.store.chain_id()
        assert good is not None
        assert chain_id is not None
        # what a bridge before the fix signed after a meter swap: OK, below the chain
        bad = ReadingRecord(
            meter_id="h1-net",
            interval_start_ms=good.record.interval_end_ms,
            interval_end_ms=next(tick),
            import_wh=0,
            export_wh=0,
            power_w=100,
            voltage_dv=2300,
            status=int(ReadingStatus.OK),
            sequence=1,
            prev_hash=good.record.hash(),
        )
        bridge.store.append(sign_reading(bridge_key, chain_id, bad))
        for _ in range(3):
            await bridge.poll_once(next(tick))
        await send_until_committed(bridge)
        # the refused reading and the three chained on it are set aside, kept in the store
        refused = [r.record for r in bridge.store.refused("h1-net")]
        assert refused[0] == bad
        assert [r.sequence for r in refused] == [1, 2, 3, 4]
        code = {"meter": "h1-net", "code": "decreasing_register"}
        assert bridge.metrics.value("meterbridge_refused_readings_total", code) == 1
        # the meter's next read continues its chain from the chain's head
        await bridge.poll_once(next(tick))
        await send_until_committed(bridge)
    for meter_id, _, _ in METERS:
        if meter_id != "h1-net":
            assert len(await chain_readings(node.api_url, meter_id)) == 5, meter_id
    net = await chain_readings(node.api_url, "h1-net")
    assert [r.status for r in net] == ["ok", "unavailable", "ok"]
    assert (net[1].import_wh, net[1].export_wh) == (good.record.import_wh, good.record.export_wh)
    assert net[1].interval_end_ms == bad.interval_end_ms + 3 * INTERVAL_MS
    assert net[2].import_wh >= good.record.import_wh
