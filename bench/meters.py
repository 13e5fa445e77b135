"""How many readings one meter bridge sustains, and how much of an RS-485 line they use.

Two sets of figures from one run:

* **bus budget** (computed): for each meter profile, the Modbus requests one reading takes
  (contiguous registers are read in one request), the bytes on the wire (8-byte FC3/FC4 request,
  5 + 2n-byte answer) and the line time at the given baud rate with 8N1 framing (10 bits per
  character) and the 3.5-character silences RTU needs around every frame.  From it: readings per
  second the line allows, and the share of a 15-minute interval a bus of N meters is busy.
* **sustained** (measured): one bridge reading simulated meters over RTU-over-TCP as fast as it
  can, each reading decoded, put in a hash-chained record, signed and written to the bridge's
  LevelDB with fsync, exactly as the bridge does before sending.  Run once without line timing
  (the bridge's own ceiling) and once with the simulator holding each exchange for its 9600-baud
  line time (what a real bus allows).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from gridchain.bench.conditions import conditions
from gridchain.meterbridge.config import TcpBus
from gridchain.meterbridge.metrics import BridgeMetrics
from gridchain.meterbridge.modbus import BusClient
from gridchain.meterbridge.profiles import builtin_profile_names, load_profile, plan_reads
from gridchain.meterbridge.simulator import MeterSimulator, SimMeter, frame_seconds
from gridchain.meterbridge.store import BridgeStore
from gridchain.ports import free_port
from gridchain.protocol.crypto import SigningKey, sha256
from gridchain.protocol.meter import (
    GENESIS_READING_HASH,
    ReadingRecord,
    ReadingStatus,
    sign_reading,
)

INTERVAL_S = 900


def bus_budget(baud: int, meters_on_bus: int) -> list[dict[str, Any]]:
    rows = []
    for name in builtin_profile_names():
        blocks = plan_reads(load_profile(name))
        wire_bytes = sum(8 + 5 + 2 * b.count for b in blocks)
        line_s = sum(frame_seconds(b.count, baud) for b in blocks)
        rows.append(
            {
                "profile": name,
                "requests_per_reading": len(blocks),
                "bytes_per_reading": wire_bytes,
                "line_ms_per_reading": round(1000 * line_s, 2),
                "max_readings_per_s": round(1 / line_s, 1),
                "bus_busy_share_per_interval": meters_on_bus * line_s / INTERVAL_S,
            }
        )
    return rows


async def sustained(meters: int, seconds: float, line_baud: int | None) -> dict[str, Any]:
    names = builtin_profile_names()
    sims = [
        SimMeter(slave_id=i + 1, profile=load_profile(names[i % len(names)]), kind="net")
        for i in range(meters)
    ]
    simulator = MeterSimulator(sims, line_baud=line_baud)
    port = free_port()
    await simulator.start_tcp("127.0.0.1", port)
    bus = TcpBus(name="bench", kind="rtu-over-tcp", host="127.0.0.1", port=port, timeout_s=2.0)
    client = BusClient(bus, BridgeMetrics())
    key = SigningKey(sha256(b"bench-bridge"))
    chain_id = sha256(b"bench-chain")
    prev = {m.slave_id: GENESIS_READING_HASH for m in sims}
    sequence = dict.fromkeys(prev, 0)
    count = 0
    with tempfile.TemporaryDirectory() as tmp:
        store = BridgeStore(Path(tmp) / "bridge")
        started = time.perf_counter()
        try:
            while time.perf_counter() - started < seconds:
                for meter in sims:
                    meter_id = f"m{meter.slave_id}"
                    m = await client.read_meter(meter_id, meter.slave_id, meter.profile)
                    now_ms = time.time_ns() // 1_000_000
                    record = ReadingRecord(
                        meter_id=meter_id,
                        interval_start_ms=now_ms - 1,
                        interval_end_ms=now_ms,
                        import_wh=m.import_wh,
                        export_wh=m.export_wh,
                        power_w=m.power_w,
                        voltage_dv=m.voltage_dv,
                        status=int(ReadingStatus.OK),
                        sequence=sequence[meter.slave_id],
                        prev_hash=prev[meter.slave_id],
                    )
                    store.append(sign_reading(key, chain_id, record))
                    prev[meter.slave_id] = record.hash()
                    sequence[meter.slave_id] += 1
                    count += 1
            elapsed = time.perf_counter() - started
        finally:
            store.close()
            await client.close()
            await simulator.stop()
    return {
        "meters": meters,
        "line_baud": line_baud,
        "readings": count,
        "seconds": round(elapsed, 2),
        "readings_per_s": round(count / elapsed, 1),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="gridchain bench meters", description=__doc__)
    parser.add_argument("--baud", type=int, default=9600)
    parser.add_argument("--meters", type=int, default=6, help="simulated meters on the bus")
    parser.add_argument("--seconds", type=float, default=10.0, help="per measured run")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    budget = bus_budget(args.baud, args.meters)
    free_run = asyncio.run(sustained(args.meters, args.seconds, None))
    line_run = asyncio.run(sustained(args.meters, args.seconds, args.baud))
    report = {
        "baud": args.baud,
        "interval_s": INTERVAL_S,
        "bus_budget": budget,
        "sustained_no_line_timing": free_run,
        "sustained_with_line_timing": line_run,
        "conditions": conditions(),
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"gridchain bench meters: RS-485 at {args.baud} baud 8N1, {args.meters} meters per bus")
    print(
        f"{'profile':<16} {'requests':>8} {'bytes':>6} {'line ms':>8} {'max/s':>7}"
        f" {'busy/15min':>11}"
    )
    for r in budget:
        print(
            f"{r['profile']:<16} {r['requests_per_reading']:>8} {r['bytes_per_reading']:>6} "
            f"{r['line_ms_per_reading']:>8} {r['max_readings_per_s']:>7} "
            f"{100 * r['bus_busy_share_per_interval']:>10.4f}%"
        )
    for label, run in (("no line timing", free_run), (f"{args.baud} baud line timing", line_run)):
        print(
            f"sustained, {label}: {run['readings_per_s']} readings/s "
            f"({run['readings']} readings of {run['meters']} meters in {run['seconds']} s; "
            "read, sign, fsync to LevelDB)"
        )
    print(f"conditions: {json.dumps(report['conditions'])}")
    return 0
