"""The bridge end to end over real Modbus RTU framing, against a node that checks like the chain.

Ticks are passed to ``poll_once`` explicitly and the fake node commits only when told, so the
tests decide exactly where a crash or an outage falls and never wait on the wall clock.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from aiohttp import ClientSession, web

from gridchain.api.client import NodeUnreachableError
from gridchain.meterbridge.agent import make_app
from gridchain.meterbridge.bridge import Bridge, next_tick_ms
from gridchain.meterbridge.simulator import MeterSimulator
from gridchain.protocol.meter import GENESIS_READING_HASH, ReadingStatus, SignedReading
from gridchain.protocol.tx import MeterReadings, Transaction
from tests.meterbridge.conftest import INTERVAL_MS, METERS, T0_MS, MakeConfig
from tests.meterbridge.fakenode import FakeNode
from tests.procs import free_test_port as free_port


def tcp_bus(port: int) -> dict[str, object]:
    return {"kind": "rtu-over-tcp", "host": "127.0.0.1", "port": port}


def assert_chain(readings: list[SignedReading], count: int) -> None:
    """Sequences 0..count-1, each naming the previous record's hash, registers non-decreasing."""
    assert [r.record.sequence for r in readings] == list(range(count))
    prev = GENESIS_READING_HASH
    for r in readings:
        assert r.record.prev_hash == prev
        prev = r.record.hash()
    for a, b in itertools.pairwise(readings):
        assert b.record.import_wh >= a.record.import_wh
        assert b.record.export_wh >= a.record.export_wh
        assert b.record.interval_start_ms == a.record.interval_end_ms


def test_ticks_are_clock_aligned() -> None:
    assert next_tick_ms(900_000 * 7 + 1, 900_000) == 900_000 * 8
    assert next_tick_ms(900_000 * 7, 900_000) == 900_000 * 8


async def test_poll_sign_store_send_over_rtu_over_tcp(
    simulator: tuple[MeterSimulator, int], fake_node: FakeNode, make_config: MakeConfig
) -> None:
    sim, port = simulator
    async with Bridge(make_config(fake_node.url, tcp_bus(port))) as bridge:
        await bridge.reconcile()
        for i in range(1, 4):
            written = await bridge.poll_once(T0_MS + i * INTERVAL_MS)
            assert [r.record.status for r in written] == [ReadingStatus.OK] * len(METERS)
        assert sim.requests >= 3 * (3 + 3 + 1 + 3)  # SDM: 3 blocks each, generic: 1
        outcome = await bridge.send_once()
        assert outcome.posted == 1
        fake_node.commit()
        await bridge.send_once()
        assert bridge.store.inflight() is None
        assert bridge.unsent_count() == 0
    assert fake_node.rejections == []
    for meter_id, _, _ in METERS:
        on_chain = fake_node.meters[meter_id].readings
        assert_chain(on_chain, 3)
        assert all(r.record.voltage_dv > 2000 for r in on_chain)
    pv = fake_node.meters["h1-pv"].readings
    assert pv[-1].record.power_w < 0  # noon: the PV meter exports
    assert pv[-1].record.export_wh > pv[0].record.export_wh


async def test_dead_slave_is_retried_counted_and_never_invented(
    simulator: tuple[MeterSimulator, int], fake_node: FakeNode, make_config: MakeConfig
) -> None:
    sim, port = simulator
    meters = [*METERS, ("ghost", 9, "generic")]
    fake_node.register_meter("ghost", fake_node.meters["h1-net"].bridge_key)
    async with Bridge(make_config(fake_node.url, tcp_bus(port), meters)) as bridge:
        await bridge.reconcile()
        written = await bridge.poll_once(T0_MS + INTERVAL_MS)
        # never read: no registers to repeat, so the interval is skipped, not invented
        assert "ghost" not in {r.record.meter_id for r in written}
        m = bridge.metrics
        assert m.value("meterbridge_modbus_retries_total", {"bus": "bus0", "meter": "ghost"}) == 2
        assert (
            m.value("meterbridge_modbus_requests_total", {"bus": "bus0", "outcome": "timeout"}) == 3
        )
        assert m.value("meterbridge_readings_total", {"meter": "ghost", "status": "skipped"}) == 1

        # a meter that was read and then goes silent: UNAVAILABLE repeating its last registers
        first = await bridge.poll_once(T0_MS + 2 * INTERVAL_MS)
        ev_ok = next(r for r in first if r.record.meter_id == "h1-ev")
        del sim.meters[3]
        second = await bridge.poll_once(T0_MS + 3 * INTERVAL_MS)
        ev = next(r for r in second if r.record.meter_id == "h1-ev").record
        assert ev.status == ReadingStatus.UNAVAILABLE
        assert (ev.import_wh, ev.export_wh, ev.power_w, ev.voltage_dv) == (
            ev_ok.record.import_wh,
            ev_ok.record.export_wh,
            ev_ok.record.power_w,
            ev_ok.record.voltage_dv,
        )
        assert ev.sequence == ev_ok.record.sequence + 1
        assert (
            m.value("meterbridge_readings_total", {"meter": "h1-ev", "status": "unavailable"}) == 1
        )


async def test_readings_are_durable_before_they_are_sent(
    simulator: tuple[MeterSimulator, int], fake_node: FakeNode, make_config: MakeConfig
) -> None:
    _, port = simulator
    async with Bridge(make_config(fake_node.url, tcp_bus(port))) as bridge:
        seen: list[int] = []

        def check(tx: Transaction) -> None:
            # the node has the transaction: every reading in it, and the transaction itself,
            # must already be in the bridge's LevelDB
            assert isinstance(tx.body, MeterReadings)
            for r in tx.body.readings:
                assert bridge.store.get(r.record.meter_id, r.record.sequence) == r
            stored = bridge.store.inflight()
            assert stored is not None
            assert stored.hash() == tx.hash()
            seen.append(len(tx.body.readings))

        fake_node.on_post = check
        await bridge.reconcile()
        await bridge.poll_once(T0_MS + INTERVAL_MS)
        await bridge.send_once()
        assert seen == [len(METERS)]


class Crash(Exception):  # noqa: N818 - it is the crash
    """Raised in place of the POST: the process dies after writing, before sending."""


async def test_restart_and_node_outage_lose_and_duplicate_nothing(
    simulator: tuple[MeterSimulator, int],
    fake_node: FakeNode,
    make_config: MakeConfig,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, port = simulator
    config = make_config(fake_node.url, tcp_bus(port))

    # 1. bridge A reads 3 intervals, writes the batch in flight and dies before posting it
    bridge_a = Bridge(config)
    async with bridge_a:
        await bridge_a.reconcile()
        for i in range(1, 4):
            await bridge_a.poll_once(T0_MS + i * INTERVAL_MS)

        async def crash(_: str) -> str:
            raise Crash

        monkeypatch.setattr(bridge_a.node, "submit_raw", crash)
        with pytest.raises(Crash):
            await bridge_a.send_once()
    assert fake_node.posts == 0

    # 2. the node goes down; bridge B starts on A's store and keeps reading
    node_port = fake_node.port
    await fake_node.stop()
    async with Bridge(config) as bridge_b:
        assert bridge_b.store.inflight() is not None
        for i in range(4, 6):
            written = await bridge_b.poll_once(T0_MS + i * INTERVAL_MS)
            assert len(written) == len(METERS)
        with pytest.raises(NodeUnreachableError):
            await bridge_b.send_once()

        # 3. the node is back: the same transaction is posted again (same bytes, same nonce)
        await fake_node.start(node_port)
        await bridge_b.send_once()
        assert len(fake_node.mempool) == 1

        # 4. the node restarts and loses its mempool before committing: posted again
        fake_node.drop_mempool()
        await bridge_b.send_once()
        fake_node.commit()
        # 5. committed; the rest follows in the next batch
        await bridge_b.send_once()  # sees the commit, posts readings 3..4
        fake_node.commit()
        await bridge_b.send_once()  # sees the second commit
        assert bridge_b.unsent_count() == 0

    assert fake_node.rejections == []
    for meter_id, _, _ in METERS:
        assert_chain(fake_node.meters[meter_id].readings, 5)


async def test_fresh_store_continues_the_chain_from_the_node(
    simulator: tuple[MeterSimulator, int],
    fake_node: FakeNode,
    make_config: MakeConfig,
    tmp_path: Path,
) -> None:
    """A replaced bridge (empty LevelDB) continues each meter's chain where the chain is."""
    _, port = simulator
    async with Bridge(make_config(fake_node.url, tcp_bus(port))) as old:
        await old.reconcile()
        await old.poll_once(T0_MS + INTERVAL_MS)
        await old.send_once()
        fake_node.commit()
    async with Bridge(make_config(fake_node.url, tcp_bus(port), data_dir=tmp_path / "new")) as new:
        assert await new.poll_once(T0_MS + 2 * INTERVAL_MS) == []  # chain id not yet known
        await new.reconcile()
        written = await new.poll_once(T0_MS + 3 * INTERVAL_MS)
        # the old store is gone, so the last registers are too: but the reads succeed
        assert [r.record.sequence for r in written] == [1] * len(METERS)
        await new.send_once()
        fake_node.commit()
    assert fake_node.rejections == []
    for meter_id, _, _ in METERS:
        assert_chain(fake_node.meters[meter_id].readings, 2)


async def test_agent_api_health_and_history(
    simulator: tuple[MeterSimulator, int], fake_node: FakeNode, make_config: MakeConfig
) -> None:
    _, port = simulator
    async with Bridge(make_config(fake_node.url, tcp_bus(port))) as bridge:
        await bridge.reconcile()
        for i in range(1, 4):
            await bridge.poll_once(T0_MS + i * INTERVAL_MS)
        await bridge.send_once()
        fake_node.commit()
        await bridge.send_once()
        await bridge.poll_once(T0_MS + 4 * INTERVAL_MS)
        runner = web.AppRunner(make_app(bridge))
        await runner.setup()
        api_port = free_port()
        await web.TCPSite(runner, "127.0.0.1", api_port).start()
        base = f"http://127.0.0.1:{api_port}"
        try:
            async with ClientSession() as http:
                async with http.get(f"{base}/agent/health") as resp:
                    health = await resp.json()
                async with http.get(
                    f"{base}/fetchHistoricalData",
                    params={"meter_id": "h1-pv", "from_ms": str(T0_MS + 2 * INTERVAL_MS)},
                ) as resp:
                    history = await resp.json()
                async with http.get(f"{base}/fetchHistoricalData?meter_id=nope") as resp:
                    assert resp.status == 404
                async with http.get(f"{base}/metrics") as resp:
                    assert "meterbridge_modbus_requests_total" in await resp.text()
        finally:
            await runner.cleanup()
    assert health["status"] == "ok"
    assert health["unsent_readings"] == len(METERS)
    pv = next(m for m in health["meters"] if m["meter_id"] == "h1-pv")
    assert (pv["last_sequence"], pv["committed_through"]) == (3, 2)
    assert [r["sequence"] for r in history["readings"]] == [1, 2, 3]
    assert [r["committed"] for r in history["readings"]] == [True, True, False]
