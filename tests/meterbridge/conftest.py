"""Fixtures: a simulator on RTU-over-TCP, a fake node, and a bridge config pointing at both."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from gridchain.meterbridge.config import BridgeConfig
from gridchain.meterbridge.simulator import MeterSimulator, SimClock, SimMeter, household_meters
from gridchain.protocol.crypto import SigningKey
from tests.meterbridge.fakenode import FakeNode
from tests.procs import free_test_port as free_port

#: A clock-aligned start (multiple of 1 s) at 12:00 UTC, so PV is producing.
T0_MS = 1_750_000_000_000 // 86_400_000 * 86_400_000 + 12 * 3_600_000
INTERVAL_MS = 1_000
#: Simulated seconds per wall-clock second of the tests' simulators.
SIM_SPEED = 600.0
#: net (SDM630), pv (SDM120), ev (generic), battery (SDM120)
METERS = [
    ("h1-net", 1, "eastron-sdm630"),
    ("h1-pv", 2, "eastron-sdm120"),
    ("h1-ev", 3, "generic"),
    ("h1-batt", 4, "eastron-sdm120"),
]


@pytest.fixture
def bridge_key() -> SigningKey:
    return SigningKey(b"\x07" * 32)


@asynccontextmanager
async def running_simulator(
    meters: Sequence[SimMeter] | None = None, *, start_ms: int = T0_MS
) -> AsyncIterator[tuple[MeterSimulator, int]]:
    """Simulated meters (one household's by default) served over RTU-over-TCP on a free port,
    stopped however the block ends."""
    sim = MeterSimulator(
        list(household_meters(1) if meters is None else meters),
        clock=SimClock(speed=SIM_SPEED, start_ms=start_ms),
    )
    port = free_port()
    await sim.start_tcp("127.0.0.1", port)
    try:
        yield sim, port
    finally:
        await sim.stop()


@pytest.fixture
async def simulator() -> AsyncIterator[tuple[MeterSimulator, int]]:
    async with running_simulator() as served:
        yield served


@pytest.fixture
async def fake_node(bridge_key: SigningKey) -> AsyncIterator[FakeNode]:
    node = FakeNode()
    for meter_id, _, _ in METERS:
        node.register_meter(meter_id, bridge_key.public_key)
    await node.start(free_port())
    yield node
    await node.stop()


MakeConfig = Callable[..., BridgeConfig]


@pytest.fixture
def make_config(tmp_path: Path, bridge_key: SigningKey) -> MakeConfig:
    def make(
        node_url: str,
        bus: dict[str, object],
        meters: list[tuple[str, int, str]] = METERS,
        data_dir: Path | None = None,
    ) -> BridgeConfig:
        return BridgeConfig.model_validate(
            {
                "name": "test",
                "node_url": node_url,
                "data_dir": str(data_dir or tmp_path / "bridge"),
                "interval_s": INTERVAL_MS / 1000,
                # the simulators run 600 s of meter time per second (SIM_SPEED)
                "meter_time_scale": SIM_SPEED,
                "key_seed_hex": bridge_key.seed.hex(),
                "buses": [{"name": "bus0", "timeout_s": 0.2, "retries": 2, **bus}],
                "meters": [
                    {"meter_id": m, "bus": "bus0", "slave_id": s, "profile": p}
                    for m, s, p in meters
                ],
            }
        )

    return make
