"""``gridchain bench gateway``: honest commit latency through a gateway, unloaded and flooded.

A 4-validator PBFT testnet runs behind one gateway (``testnet up --gateways 1``: validators take
client transactions only from the gateway; HTTPS with the community CA pinned), each in its own
process.  In every phase ``--honest`` households send transfers through the gateway, one at a
time, and time each from its POST to the websocket message (relayed by the gateway) of the
block that commits it.  The phases:

* ``unloaded``: the honest households alone;
* ``malformed``: random bytes as transactions;
* ``bad_signature``: well-formed transfers of registered senders with forged signatures;
* ``unregistered``: correctly signed transfers of keys the chain does not know;
* ``over_quota``: one registered sender sending as fast as it can, far over its quota;
* ``connections``: thousands of silent TCP connections from 30 source addresses.

A flood comes from a separate process (``--flood-worker``, at nice 19: it stands for other
people's machines) spread over several loopback source addresses, so it does not share the
honest clients' event loop.  Per phase the table shows honest p50/p99 commit latency, the
honest submissions' own latency (POST to the validators' verdict: the gateway's hop), what the
flood sent and how the gateway answered, the validators' and the gateway's CPU (from
/proc/PID/stat), the machine's load average, and the transactions that reached the validators
beyond the honest ones, from the validators' own metrics (``gridchain_txs_received`` over the
validators, divided by their number as gossip counts each transaction once per validator, plus
``gridchain_txs_rejected``).  For ``over_quota`` the sender's quota (burst + rate x seconds)
may legitimately pass: that is what a quota is.  The goal: under every flood honest p99 within
2x of unloaded and no flood transaction at the validators beyond a quota.  Benchmarks measure;
nothing here asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import ssl
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from gridchain.api import models as m
from gridchain.api.client import NodeClient, NodeError, NodeRefusedError
from gridchain.bench.cluster import bench_bundle, running_gateway_testnet
from gridchain.bench.conditions import conditions
from gridchain.protocol.address import address_of, format_address, parse_address
from gridchain.protocol.crypto import SigningKey
from gridchain.protocol.tx import Transaction, Transfer, decode_tx, sign_tx

VALIDATORS = 4
PHASES = ("unloaded", "malformed", "bad_signature", "unregistered", "over_quota", "connections")
#: The gateway's default per-sender quota (gateway/settings.py FiltersSection).
QUOTA_RATE, QUOTA_BURST = 20.0, 100.0
#: Nonces ahead of the next one the over-quota sender spreads its transactions over (the
#: gateway's default nonce window is 64).
QUOTA_NONCES = 32
#: An honest household's pause between two transfers.
HONEST_PAUSE_S = 0.1
#: Source addresses of the flood's requests and of its silent connections.
FLOOD_SOURCES = [f"127.0.0.{10 + i}" for i in range(4)]
CONNECTION_SOURCES = [f"127.0.2.{1 + i}" for i in range(30)]


# --- honest households ----------------------------------------------------------------------


@dataclass
class Honest:
    latencies: list[float] = field(default_factory=list)
    #: POST to the validators' verdict (the gateway hop and one link round trip).
    submits: list[float] = field(default_factory=list)
    sent: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    lost: int = 0


async def _listen(url: str, ca: Path, waiters: dict[str, asyncio.Future[float]]) -> None:
    async with NodeClient(url, ca_file=ca) as client:
        async for event in client.events():
            if isinstance(event, m.BlockCommittedEvent):
                now = time.perf_counter()
                for tx_hash in event.txs:
                    fut = waiters.pop(tx_hash.lower(), None)
                    if fut is not None and not fut.done():
                        fut.set_result(now)


async def _household(
    key: SigningKey,
    *,
    sink: bytes,
    chain_id: bytes,
    url: str,
    ca: Path,
    until: float,
    waiters: dict[str, asyncio.Future[float]],
    out: Honest,
) -> None:
    loop = asyncio.get_running_loop()
    address = format_address(address_of(key.public_key))
    async with NodeClient(url, ca_file=ca, retries=0) as client:
        nonce = (await client.account(address)).pending_nonce
        while time.perf_counter() < until:
            tx = sign_tx(key, chain_id, nonce, Transfer(sink, 1))
            tx_hash = tx.hash().hex()
            done: asyncio.Future[float] = loop.create_future()
            waiters[tx_hash] = done
            started = time.perf_counter()
            try:
                await client.submit_tx(tx)
            except NodeRefusedError as exc:
                out.refused[exc.node_code] += 1
                waiters.pop(tx_hash, None)
                nonce = (await client.account(address)).pending_nonce
                continue
            except NodeError as exc:
                out.refused[exc.code] += 1
                waiters.pop(tx_hash, None)
                await asyncio.sleep(HONEST_PAUSE_S)
                continue
            out.submits.append(time.perf_counter() - started)
            nonce += 1
            out.sent += 1
            try:
                committed = await asyncio.wait_for(done, 30)
            except TimeoutError:
                out.lost += 1
                waiters.pop(tx_hash, None)
                continue
            out.latencies.append(committed - started)
            await asyncio.sleep(HONEST_PAUSE_S)


async def _honest_phase(
    keys: list[SigningKey], *, sink: bytes, chain_id: bytes, url: str, ca: Path, seconds: float
) -> Honest:
    out = Honest()
    waiters: dict[str, asyncio.Future[float]] = {}
    listener = asyncio.create_task(_listen(url, ca, waiters))
    await asyncio.sleep(0.5)  # the feed is subscribed before the first transfer
    until = time.perf_counter() + seconds
    try:
        await asyncio.gather(
            *(
                _household(
                    k,
                    sink=sink,
                    chain_id=chain_id,
                    url=url,
                    ca=ca,
                    until=until,
                    waiters=waiters,
                    out=out,
                )
                for k in keys
            )
        )
    finally:
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)
    return out


# --- the flood worker (its own process) -----------------------------------------------------


def _flood_payloads(kind: str, spec: dict[str, Any]) -> list[str]:
    chain_id = bytes.fromhex(spec["chain_id"])
    sink = bytes.fromhex(spec["sink"])
    rng = random.Random(7)
    if kind == "malformed":
        return [os.urandom(rng.randint(1, 400)).hex() for _ in range(2000)]
    if kind == "bad_signature":
        keys = [SigningKey(bytes.fromhex(s)) for s in spec["registered_seeds"]]
        out = []
        for i in range(2000):
            tx = sign_tx(keys[i % len(keys)], chain_id, i % 8, Transfer(sink, 1 + i))
            out.append(Transaction(tx.sender, tx.nonce, tx.body, os.urandom(64)).encode().hex())
        return out
    if kind == "unregistered":
        strangers = [SigningKey.generate() for _ in range(200)]
        return [
            sign_tx(strangers[i % 200], chain_id, 0, Transfer(sink, 1 + i)).encode().hex()
            for i in range(2000)
        ]
    return []


async def _post_flood(
    kind: str, spec: dict[str, Any], seconds: float, concurrency: int
) -> dict[str, Any]:
    context = ssl.create_default_context(cafile=spec["ca"])
    url = spec["url"] + "/v1/txs"
    payloads = _flood_payloads(kind, spec)
    statuses: Counter[str] = Counter()
    until = time.perf_counter() + seconds
    flooder = SigningKey(bytes.fromhex(spec["flooder_seed"]))
    chain_id = bytes.fromhex(spec["chain_id"])
    sink = bytes.fromhex(spec["sink"])
    quota_nonce = [spec["flooder_nonce"]]
    counter = iter(range(10**9))
    rng = random.Random(11)

    def next_payload() -> str:
        i = next(counter)
        if kind == "over_quota":  # distinct nonces in the window, so the quota is what stops it
            nonce = quota_nonce[0] + rng.randrange(QUOTA_NONCES)
            return sign_tx(flooder, chain_id, nonce, Transfer(sink, 1 + i)).encode().hex()
        return payloads[i % len(payloads)]

    async def worker(session: aiohttp.ClientSession) -> None:
        while time.perf_counter() < until:
            body = {"tx": next_payload()}
            try:
                async with session.post(url, json=body) as resp:
                    doc = await resp.json(content_type=None)
                    code = doc.get("error", {}).get("code", "") if resp.status >= 300 else ""
                    statuses[f"{resp.status} {code}".strip()] += 1
                    if kind == "over_quota" and resp.status == 202:
                        quota_nonce[0] = max(quota_nonce[0], int(body_nonce(body)) + 1)
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                statuses[type(exc).__name__] += 1

    sessions = [
        aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=context, local_addr=(source, 0), limit=0),
            timeout=aiohttp.ClientTimeout(total=30),
        )
        for source in FLOOD_SOURCES
    ]
    try:
        await asyncio.gather(*(worker(sessions[i % len(sessions)]) for i in range(concurrency)))
    finally:
        for s in sessions:
            await s.close()
    return {"sent": sum(statuses.values()), "answers": dict(statuses)}


async def _connection_flood(spec: dict[str, Any], seconds: float, count: int) -> dict[str, Any]:
    """Hold ``count`` silent TCP connections (no TLS handshake), reopening any the gateway
    closes, spread over CONNECTION_SOURCES."""
    host, port = spec["url"].removeprefix("https://").rsplit(":", 1)
    until = time.perf_counter() + seconds
    opened = refused = 0

    async def hold(source: str) -> None:
        nonlocal opened, refused
        while time.perf_counter() < until:
            try:
                reader, writer = await asyncio.open_connection(
                    host, int(port), local_addr=(source, 0)
                )
            except OSError:
                refused += 1
                await asyncio.sleep(0.1)
                continue
            opened += 1
            try:
                remaining = until - time.perf_counter()
                await asyncio.wait_for(reader.read(), max(0.0, remaining))
                refused += 1  # the gateway closed it: open another
            except (TimeoutError, OSError):
                pass
            finally:
                writer.close()

    await asyncio.gather(
        *(hold(CONNECTION_SOURCES[i % len(CONNECTION_SOURCES)]) for i in range(count))
    )
    return {"sent": opened, "answers": {"opened": opened, "closed_by_gateway": refused}}


def body_nonce(body: dict[str, str]) -> int:
    return decode_tx(bytes.fromhex(body["tx"])).nonce


def _flood_worker(args: argparse.Namespace) -> int:
    """One flood, at the lowest CPU priority: the flood stands for other people's machines, so
    on a shared benchmark host it must not take the CPU the validators and the gateway need;
    what it costs the gateway to refuse it is measured all the same."""
    os.nice(19)
    spec = json.loads(Path(args.spec).read_text())
    if args.flood_worker == "connections":
        result = asyncio.run(_connection_flood(spec, args.seconds, args.connections))
    else:
        result = asyncio.run(_post_flood(args.flood_worker, spec, args.seconds, args.concurrency))
    print(json.dumps(result))
    return 0


# --- measuring -------------------------------------------------------------------------------


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _metrics(url: str, ca: Path | None = None) -> dict[str, float]:
    """Sums of a Prometheus text page's samples by metric name (labels summed over)."""
    context: ssl.SSLContext | bool = True
    if ca is not None:
        context = ssl.create_default_context(cafile=str(ca))
    connector = aiohttp.TCPConnector(ssl=context)
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.get(url + "/metrics") as resp,
    ):
        text = await resp.text()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name = line.split("{", 1)[0].split(" ", 1)[0]
            out[name] = out.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


async def _edge_counts(validator_urls: list[str], gateway_url: str, ca: Path) -> dict[str, float]:
    at_validators = [await _metrics(u) for u in validator_urls]
    gateway = await _metrics(gateway_url, ca)
    received = sum(v.get("gridchain_txs_received_total", 0.0) for v in at_validators)
    rejected = sum(v.get("gridchain_txs_rejected_total", 0.0) for v in at_validators)
    return {
        "arrived": received / len(validator_urls) + rejected,
        "gateway_refused": gateway.get("gridchain_gateway_refused_total", 0.0),
        "gateway_forwarded": gateway.get("gridchain_gateway_forwarded_total", 0.0),
    }


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run_phase(
    phase: str,
    *,
    keys: list[SigningKey],
    sink: bytes,
    chain_id: bytes,
    spec_path: Path,
    validators: list[Any],
    gateway: Any,
    ca: Path,
    seconds: float,
    concurrency: int,
    connections: int,
) -> dict[str, Any]:
    urls = [v.api_url for v in validators]
    before = asyncio.run(_edge_counts(urls, gateway.api_url, ca))
    cpu_before = {v.name: _cpu_s(v.pid) for v in [*validators, gateway]}
    worker = None
    if phase != "unloaded":
        cmd = [sys.executable, "-m", "gridchain", "bench", "gateway", "--flood-worker", phase]
        cmd += ["--spec", str(spec_path), "--seconds", str(seconds + 1.0)]
        cmd += ["--concurrency", str(concurrency), "--connections", str(connections)]
        worker = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        time.sleep(1.0)  # the flood is running before the honest households start
    started = time.perf_counter()
    honest = asyncio.run(
        _honest_phase(
            keys, sink=sink, chain_id=chain_id, url=gateway.api_url, ca=ca, seconds=seconds
        )
    )
    wall = time.perf_counter() - started
    cpu = {v.name: (_cpu_s(v.pid) - cpu_before[v.name]) / wall for v in [*validators, gateway]}
    flood: dict[str, Any] = {"sent": 0, "answers": {}}
    if worker is not None:
        out, _ = worker.communicate(timeout=120)
        flood = json.loads(out.strip().splitlines()[-1])
    time.sleep(2.0)  # gossip and the last blocks settle before the counters are read
    after = asyncio.run(_edge_counts(urls, gateway.api_url, ca))
    arrived = after["arrived"] - before["arrived"]
    return {
        "phase": phase,
        "honest_sent": honest.sent,
        "honest_committed": len(honest.latencies),
        "honest_refused": dict(honest.refused),
        "honest_lost": honest.lost,
        "p50_ms": _ms(_percentile(honest.latencies, 0.5)),
        "p99_ms": _ms(_percentile(honest.latencies, 0.99)),
        "submit_p50_ms": _ms(_percentile(honest.submits, 0.5)),
        "submit_p99_ms": _ms(_percentile(honest.submits, 0.99)),
        "load_avg_1m": round(os.getloadavg()[0], 1),
        "flood_sent": flood["sent"],
        "flood_answers": flood["answers"],
        "gateway_refused": after["gateway_refused"] - before["gateway_refused"],
        "validators_cpu_pct": round(
            100 * sum(cpu[v.name] for v in validators) / len(validators), 1
        ),
        "validators_cpu_pct_max": round(100 * max(cpu[v.name] for v in validators), 1),
        "gateway_cpu_pct": round(100 * cpu[gateway.name], 1),
        "flood_txs_at_validators": round(arrived - honest.sent, 1),
        "quota_allowance": (
            round(QUOTA_BURST + QUOTA_RATE * (seconds + 1.0)) if phase == "over_quota" else 0
        ),
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


# --- command line ---------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="gridchain bench gateway", description=__doc__)
    parser.add_argument("--seconds", type=float, default=15.0, help="length of each phase")
    parser.add_argument("--honest", type=int, default=4, help="honest households")
    parser.add_argument("--concurrency", type=int, default=64, help="flood requests in flight")
    parser.add_argument("--connections", type=int, default=3000, help="connection flood size")
    parser.add_argument("--phases", default=",".join(PHASES), help="comma-separated subset")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--flood-worker", choices=PHASES[1:], help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.flood_worker:
        return _flood_worker(args)
    phases = [p for p in args.phases.split(",") if p]
    unknown = set(phases) - set(PHASES)
    if unknown:
        parser.error(f"unknown phases: {', '.join(sorted(unknown))}")
    bundle = bench_bundle(
        "gateway",
        engine="pbft",
        validators=VALIDATORS,
        participants=args.honest + 2,  # the households, the over-quota sender, the sink
        block_interval_ms=200,
        balance_mc=10**12,
        gateways=1,
    )
    keys = [p.key for p in bundle.participants[: args.honest]]
    flooder = bundle.participants[args.honest].key
    sink = parse_address(bundle.participants[-1].address)
    chain_id = bundle.genesis.chain_id
    rows = []
    with (
        running_gateway_testnet(bundle) as (validators, gateways, ca),
        tempfile.TemporaryDirectory() as tmp,
    ):
        gateway = gateways[0]
        spec_path = Path(tmp) / "spec.json"
        spec = {
            "url": gateway.api_url,
            "ca": str(ca),
            "chain_id": chain_id.hex(),
            "sink": sink.hex(),
            "registered_seeds": [k.seed.hex() for k in keys],
            "flooder_seed": flooder.seed.hex(),
            "flooder_nonce": 0,
        }
        spec_path.write_text(json.dumps(spec))
        for phase in phases:
            row = run_phase(
                phase,
                keys=keys,
                sink=sink,
                chain_id=chain_id,
                spec_path=spec_path,
                validators=validators,
                gateway=gateway,
                ca=ca,
                seconds=args.seconds,
                concurrency=args.concurrency,
                connections=args.connections,
            )
            rows.append(row)
            if not args.json:
                _print_row(row)
    report = {"conditions": conditions(), "seconds": args.seconds, "phases": rows}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_summary(rows)
        print("conditions:", json.dumps(report["conditions"]))
    return 0


def _print_row(row: dict[str, Any]) -> None:
    print(
        f"{row['phase']:<14} honest {row['honest_committed']:>4} committed  "
        f"p50 {row['p50_ms']} ms  p99 {row['p99_ms']} ms (submit p50 {row['submit_p50_ms']} "
        f"p99 {row['submit_p99_ms']})  | flood sent {row['flood_sent']:>6}  "
        f"refused at gateway {row['gateway_refused']:>7.0f}  at validators "
        f"{row['flood_txs_at_validators']}"
        + (f" (quota {row['quota_allowance']})" if row["quota_allowance"] else "")
        + f"  | CPU validators {row['validators_cpu_pct']}% (max {row['validators_cpu_pct_max']}%)"
        f" gateway {row['gateway_cpu_pct']}%  load {row['load_avg_1m']}",
        flush=True,
    )
    if row["flood_answers"]:
        print(f"{'':<14} gateway answers: {row['flood_answers']}", flush=True)


def _print_summary(rows: list[dict[str, Any]]) -> None:
    base = next((r["p99_ms"] for r in rows if r["phase"] == "unloaded"), None)
    if base is None:
        return
    print(f"\nhonest p99 relative to unloaded ({base} ms):")
    for r in rows:
        ratio = None if r["p99_ms"] is None else round(r["p99_ms"] / base, 2)
        print(f"  {r['phase']:<14} {ratio}x")
