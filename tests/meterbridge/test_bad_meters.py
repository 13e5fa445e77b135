"""A bad meter never wedges or kills the bridge (issue 12, item 1).

pymodbus's own server (the simulator) is the meter; values are forced by overriding what a
simulated meter measures, so the registers on the wire are exactly what a broken meter would
show.  The fake node admits readings with the chain's own ``check_reading``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from dataclasses import dataclass, field, replace
from pathlib import Path

from gridchain.meterbridge.bridge import Bridge
from gridchain.meterbridge.profiles import load_profile
from gridchain.meterbridge.simulator import MeterSimulator, SimMeter
from gridchain.protocol.crypto import SigningKey
from gridchain.protocol.meter import ReadingRecord, ReadingStatus, sign_reading
from tests.meterbridge.conftest import (
    INTERVAL_MS,
    METERS,
    T0_MS,
    MakeConfig,
    running_simulator,
)
from tests.meterbridge.fakenode import FakeNode
from tests.meterbridge.test_bridge import tcp_bus
from tests.procs import free_test_port as free_port


@dataclass
class ForcedMeter(SimMeter):
    """A simulated meter whose quantities can be forced to any value (SI units: V, W, Wh)."""

    forced: dict[str, float] = field(default_factory=dict)

    def values(self, t_ms: int) -> dict[str, float]:
        return super().values(t_ms) | self.forced


def pv_meter() -> ForcedMeter:
    return ForcedMeter(2, load_profile("eastron-sdm120"), "pv")


async def test_out_of_range_values_are_unavailable_and_never_kill_the_bridge(
    fake_node: FakeNode, make_config: MakeConfig
) -> None:
    meter = pv_meter()
    async with running_simulator([meter]) as (_sim, port):
        config = make_config(fake_node.url, tcp_bus(port), [("h1-pv", 2, "eastron-sdm120")])
        async with Bridge(config) as bridge:
            await bridge.reconcile()
            (first,) = await bridge.poll_once(T0_MS + INTERVAL_MS)
            assert first.record.status == ReadingStatus.OK
            bad = [
                {"voltage": 1e9},  # beyond the record's U32 decivolts
                {"power": 1e20},  # beyond I64
                {"import_energy": 3e19},  # 3e16 kWh: beyond U64 Wh
                {"voltage": 1000.0},  # fits the record, beyond the SDM120's rating
                {"power": -50_000.0},  # beyond 45 A
                {"import_energy": first.record.import_wh + 1e15},  # +1e12 kWh in 1 s
            ]
            for i, forced in enumerate(bad, start=2):
                meter.forced = forced
                (reading,) = await bridge.poll_once(T0_MS + i * INTERVAL_MS)
                rec = reading.record
                assert rec.status == ReadingStatus.UNAVAILABLE, forced
                assert (rec.import_wh, rec.export_wh, rec.voltage_dv) == (
                    first.record.import_wh,
                    first.record.export_wh,
                    first.record.voltage_dv,
                )
            implausible = bridge.metrics.value(
                "meterbridge_implausible_readings_total", {"meter": "h1-pv"}
            )
            assert implausible == len(bad)
            meter.forced = {}
            (good,) = await bridge.poll_once(T0_MS + (len(bad) + 2) * INTERVAL_MS)
            assert good.record.status == ReadingStatus.OK
            await bridge.send_once()
            fake_node.commit()
        assert fake_node.rejections == []
        assert len(fake_node.meters["h1-pv"].readings) == len(bad) + 2


async def test_an_energy_jump_beyond_the_rating_is_unavailable_not_ok(
    fake_node: FakeNode, make_config: MakeConfig
) -> None:
    """An import jump of 1e12 kWh in one interval fits the record but no SDM120 measures it."""
    meter = pv_meter()
    async with running_simulator([meter]) as (_sim, port):
        config = make_config(fake_node.url, tcp_bus(port), [("h1-pv", 2, "eastron-sdm120")])
        async with Bridge(config) as bridge:
            await bridge.reconcile()
            (first,) = await bridge.poll_once(T0_MS + INTERVAL_MS)
            meter.forced = {"import_energy": first.record.import_wh + 1e15}
            (jump,) = await bridge.poll_once(T0_MS + 2 * INTERVAL_MS)
            assert jump.record.status == ReadingStatus.UNAVAILABLE
            assert jump.record.import_wh == first.record.import_wh
            meter.forced = {}
            (after,) = await bridge.poll_once(T0_MS + 3 * INTERVAL_MS)
            assert after.record.status == ReadingStatus.OK  # true readings are not "decreasing"


async def test_a_swapped_meter_on_a_fresh_store_is_not_signed_below_the_chain(
    fake_node: FakeNode, make_config: MakeConfig, tmp_path: Path
) -> None:
    """New SD card and a new meter: the chain's registers are the bound, the others commit."""
    fake_node.admit_like_chain = True
    async with running_simulator() as (sim, port):
        sim.meters[2].export_wh = 10_000.0  # the PV meter has counted 10 kWh so far
        async with Bridge(make_config(fake_node.url, tcp_bus(port))) as old:
            await old.reconcile()
            await old.poll_once(T0_MS + INTERVAL_MS)
            await old.send_once()
            fake_node.commit()
        before = fake_node.meters["h1-pv"].readings[-1].record
        assert before.export_wh > 0
        # the PV meter is swapped for a new one, whose registers start from zero
        sim.meters[2].import_wh = sim.meters[2].export_wh = 0.0
        config = make_config(fake_node.url, tcp_bus(port), data_dir=tmp_path / "new-card")
        async with Bridge(config) as new:
            await new.reconcile()
            written = await new.poll_once(T0_MS + 2 * INTERVAL_MS)
            pv = next(r.record for r in written if r.record.meter_id == "h1-pv")
            assert pv.status == ReadingStatus.UNAVAILABLE
            assert (pv.import_wh, pv.export_wh) == (before.import_wh, before.export_wh)
            for _ in range(3):
                await new.send_once()
                fake_node.commit()
        assert fake_node.rejections == []
        for meter_id, _, _ in METERS:
            assert len(fake_node.meters[meter_id].readings) == 2, meter_id


async def test_a_refused_reading_is_set_aside_and_never_blocks_the_other_meters(
    simulator: tuple[MeterSimulator, int],
    fake_node: FakeNode,
    make_config: MakeConfig,
    bridge_key: SigningKey,
) -> None:
    """A store holding a reading the chain refuses (signed before the fix): no wedge."""
    sim, port = simulator
    sim.meters[1].import_wh = 10_000.0  # the net meter has counted 10 kWh so far
    fake_node.admit_like_chain = True
    async with Bridge(make_config(fake_node.url, tcp_bus(port))) as bridge:
        await bridge.reconcile()
        await bridge.poll_once(T0_MS + INTERVAL_MS)
        await bridge.send_once()
        fake_node.commit()
        good = fake_node.meters["h1-net"].readings[-1]
        assert good.record.import_wh >= 10_000
        # what the old bridge signed after a meter swap: OK, below the chain's registers
        chain_id = bridge.store.chain_id()
        assert chain_id is not None
        bad = ReadingRecord(
            meter_id="h1-net",
            interval_start_ms=good.record.interval_end_ms,
            interval_end_ms=T0_MS + 2 * INTERVAL_MS,
            import_wh=0,
            export_wh=0,
            power_w=100,
            voltage_dv=2300,
            status=int(ReadingStatus.OK),
            sequence=1,
            prev_hash=good.record.hash(),
        )
        bridge.store.append(sign_reading(bridge_key, chain_id, bad))
        for i in range(3, 6):
            await bridge.poll_once(T0_MS + i * INTERVAL_MS)
        for _ in range(8):
            await bridge.send_once()
            fake_node.commit()
        assert bridge.unsent_count() == 0
        # the refused reading and the three chained on it are set aside, kept in the store
        refused = [r.record for r in bridge.store.refused("h1-net")]
        assert refused[0] == bad
        assert [r.sequence for r in refused] == [1, 2, 3, 4]
        code = {"meter": "h1-net", "code": "decreasing_register"}
        assert bridge.metrics.value("meterbridge_refused_readings_total", code) == 1
    assert "decreasing_register" in fake_node.rejections
    for meter_id, _, _ in METERS:
        readings = fake_node.meters[meter_id].readings
        assert len(readings) >= 2, meter_id
        assert readings[-1].record.interval_end_ms == T0_MS + 5 * INTERVAL_MS
    net = [r.record for r in fake_node.meters["h1-net"].readings]
    assert net[1].status == ReadingStatus.UNAVAILABLE
    assert net[1].import_wh == good.record.import_wh
    assert all(b.import_wh >= a.import_wh for a, b in itertools.pairwise(net))


async def test_a_meter_whose_replacement_is_refused_too_is_blocked_alone(
    simulator: tuple[MeterSimulator, int],
    fake_node: FakeNode,
    make_config: MakeConfig,
    bridge_key: SigningKey,
) -> None:
    """A reading stamped an hour ahead (a bridge clock gone wrong): its UNAVAILABLE stand-in
    ends there too and is refused as well, so the meter stops; the other meters commit."""
    _, port = simulator
    fake_node.admit_like_chain = True
    fake_node.block_ms = T0_MS + 10 * INTERVAL_MS
    async with Bridge(make_config(fake_node.url, tcp_bus(port))) as bridge:
        await bridge.reconcile()
        await bridge.poll_once(T0_MS + INTERVAL_MS)
        await bridge.send_once()
        fake_node.commit()
        good = fake_node.meters["h1-ev"].readings[-1].record
        chain_id = bridge.store.chain_id()
        assert chain_id is not None
        ahead = replace(
            good,
            interval_start_ms=good.interval_end_ms,
            interval_end_ms=T0_MS + 3_600_000,
            sequence=1,
            prev_hash=good.hash(),
        )
        bridge.store.append(sign_reading(bridge_key, chain_id, ahead))
        for _ in range(8):
            await bridge.send_once()
            fake_node.commit()
        for i in range(2, 4):
            await bridge.poll_once(T0_MS + i * INTERVAL_MS)
        for _ in range(3):
            await bridge.send_once()
            fake_node.commit()
        blocked = bridge.meters["h1-ev"].blocked
        posts = fake_node.posts
        await bridge.send_once()  # a blocked meter is not posted again
        assert fake_node.posts == posts
    for meter_id in ("h1-net", "h1-pv", "h1-batt"):
        assert len(fake_node.meters[meter_id].readings) == 3, meter_id
    assert [r.record for r in fake_node.meters["h1-ev"].readings] == [good]
    assert blocked is not None
    assert "reading_time_out_of_bounds" in blocked
    assert fake_node.rejections.count("reading_time_out_of_bounds") >= 2


async def test_a_meter_registered_to_another_bridge_never_blocks_the_others(
    simulator: tuple[MeterSimulator, int], fake_node: FakeNode, make_config: MakeConfig
) -> None:
    _, port = simulator
    fake_node.admit_like_chain = True
    fake_node.register_meter("h1-ev", SigningKey(b"\x08" * 32).public_key)
    async with Bridge(make_config(fake_node.url, tcp_bus(port))) as bridge:
        await bridge.reconcile()
        for i in range(1, 3):
            await bridge.poll_once(T0_MS + i * INTERVAL_MS)
        for _ in range(3):
            await bridge.send_once()
            fake_node.commit()
        ev_error = bridge.meters["h1-ev"].last_error
    for meter_id in ("h1-net", "h1-pv", "h1-batt"):
        assert len(fake_node.meters[meter_id].readings) == 2, meter_id
    assert fake_node.meters["h1-ev"].readings == []
    assert fake_node.rejections == []  # its readings were never sent
    assert ev_error is not None
    assert "another bridge key" in ev_error


class LateProxy:
    """A TCP proxy in front of the meter that answers chosen requests late.

    ``delays`` maps (slave id, register address) to the seconds by which the answer to the
    first such request is held back; every other answer passes at once.  Frames are RTU
    (8-byte FC3/FC4 requests; answers of 5 + byte count bytes, or 5 for an exception).
    """

    def __init__(self, upstream_port: int, delays: dict[tuple[int, int], float]) -> None:
        self.upstream_port = upstream_port
        self.delays = dict(delays)
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._server is not None:
            self._server.close()

    async def _serve(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        ur, uw = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        try:
            while True:
                request = await cr.readexactly(8)
                key = (request[0], int.from_bytes(request[2:4], "big"))
                delay = self.delays.pop(key, 0.0)
                uw.write(request)
                await uw.drain()
                head = await ur.readexactly(3)
                rest = await ur.readexactly(2 if head[1] & 0x80 else head[2] + 2)
                task = asyncio.ensure_future(self._answer(cw, head + rest, delay))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            uw.close()
            cw.close()

    @staticmethod
    async def _answer(cw: asyncio.StreamWriter, frame: bytes, delay: float) -> None:
        await asyncio.sleep(delay)
        with contextlib.suppress(ConnectionError):
            cw.write(frame)
            await cw.drain()


async def test_a_late_answer_is_never_taken_for_the_next_register(
    fake_node: FakeNode, make_config: MakeConfig
) -> None:
    """The PV meter's voltage answer comes after the timeout, while the power request waits.

    At noon the PV meter exports: its power is negative.  Taking the late voltage answer (two
    registers, like the power's) as the power's would record +230 W with status OK.
    """
    async with running_simulator() as (_sim, sim_port):
        timeout = 1.0
        # voltage (0x0000) answered 1.4 timeouts late; the next power answer (0x000C) 0.75 late
        proxy = LateProxy(sim_port, {(2, 0x0000): 1.4 * timeout, (2, 0x000C): 0.75 * timeout})
        await proxy.start()
        try:
            bus = tcp_bus(proxy.port) | {"timeout_s": timeout}
            config = make_config(fake_node.url, bus, [("h1-pv", 2, "eastron-sdm120")])
            async with Bridge(config) as bridge:
                await bridge.reconcile()
                (reading,) = await bridge.poll_once(T0_MS + INTERVAL_MS)
                rec = reading.record
                timeouts = bridge.metrics.value(
                    "meterbridge_modbus_requests_total", {"bus": "bus0", "outcome": "timeout"}
                )
            assert timeouts >= 1
            assert rec.status == ReadingStatus.OK
            assert rec.power_w < 0, rec
            assert 2200 < rec.voltage_dv < 2400
        finally:
            await proxy.stop()
