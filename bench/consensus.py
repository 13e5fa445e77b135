"""Committed transactions per second and commit latency of a validator cluster on loopback.

For each cluster size, a fresh chain is written and every validator runs as its own
``gridchain node run`` process.  Pre-signed transfers from ``--senders`` accounts are submitted
over HTTP, each sender to its own validator (round robin) and in nonce order; a websocket on
the first validator timestamps every committed transaction.  Latency is commit time minus the
moment its POST was sent; throughput is all transfers over the time from the first POST to the
last commit.  Printed beside them: the per-core Ed25519 verify rate measured in the same run,
and the bound it implies when every validator checks every signature once:
``cores x verify rate / validators``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import time
from typing import Any

import aiohttp

from bench.cluster import bench_bundle, running_cluster, transfer_streams
from bench.conditions import conditions, median
from bench.transfers import bench_verify
from protocol.tx import Transaction


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


async def _drive(
    urls: list[str],
    streams: list[list[Transaction]],
    timeout_s: float,
    *,
    batch: int,
    rate: float,
) -> dict[str, Any]:
    submitted: dict[str, float] = {}
    committed: dict[str, float] = {}
    total = sum(len(s) for s in streams)
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(urls[0] + "/v1/events")

        async def listen() -> None:
            async for msg in ws:
                now = time.perf_counter()
                event = json.loads(msg.data)
                for tx_hash in event.get("txs", []):
                    committed.setdefault(tx_hash, now)
                if len(committed) >= total:
                    return

        async def submit(index: int, url: str, txs: list[Transaction]) -> None:
            for i in range(0, len(txs), batch):
                if rate > 0:  # open loop: this batch's slot in a steady offered load
                    due = started + (i * len(streams) + index * batch) / rate
                    await asyncio.sleep(max(0.0, due - time.perf_counter()))
                chunk = txs[i : i + batch]
                now = time.perf_counter()
                for tx in chunk:
                    submitted[tx.hash().hex()] = now
                body = {"txs": [tx.encode().hex() for tx in chunk]}
                async with session.post(url + "/v1/txs", json=body) as resp:
                    answer = await resp.json()
                    refused = [r for r in answer.get("results", []) if "error" in r]
                    if resp.status != 200 or refused:
                        raise RuntimeError(f"benchmark transfer refused: {answer}")

        listener = asyncio.create_task(listen())
        started = time.perf_counter()
        await asyncio.gather(*(submit(i, urls[i % len(urls)], s) for i, s in enumerate(streams)))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(listener, timeout=timeout_s)
        await ws.close()
    done = [h for h in submitted if h in committed]
    latencies = [committed[h] - submitted[h] for h in done]
    last = max(committed.values()) if committed else started
    return {
        "submitted": len(submitted),
        "committed": len(done),
        "tx_per_s": len(done) / (last - started) if done else 0.0,
        "latency_p50_ms": 1000 * _percentile(latencies, 0.50),
        "latency_p99_ms": 1000 * _percentile(latencies, 0.99),
    }


def run_cluster(
    engine: str,
    validators: int,
    senders: int,
    per_sender: int,
    block_ms: int,
    *,
    batch: int,
    rate: float,
) -> dict[str, Any]:
    bundle = bench_bundle(
        "bench-consensus",
        engine=engine,
        validators=validators,
        participants=senders + 1,
        block_interval_ms=block_ms,
    )
    streams = transfer_streams(bundle, per_sender)
    with running_cluster(bundle) as urls:
        return asyncio.run(_drive(urls, streams, timeout_s=120, batch=batch, rate=rate))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="gridchain bench consensus", description=__doc__)
    parser.add_argument("--engine", default="pbft", choices=["solo", "pbft", "pob", "epob"])
    parser.add_argument("--validators", default="4,7,16", help="comma-separated cluster sizes")
    parser.add_argument("--txs", type=int, default=4000, help="transfers per cluster")
    parser.add_argument("--senders", type=int, default=16)
    parser.add_argument("--block-interval-ms", type=int, default=100)
    parser.add_argument(
        "--batch", type=int, default=50, help="transactions per POST /v1/txs (1: one per request)"
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="offered load in tx/s (open loop); 0 submits as fast as the nodes accept",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    sizes = [int(x) for x in args.validators.split(",") if x]
    per_sender = max(1, args.txs // args.senders)

    probe = bench_bundle(
        "bench-consensus",
        engine=args.engine,
        validators=1 if args.engine == "solo" else 4,
        participants=5,
    )
    sample = [tx for s in transfer_streams(probe, 500) for tx in s]
    verify = median([bench_verify(sample, probe.genesis.chain_id) for _ in range(3)])
    cores = os.cpu_count() or 1
    rows = []
    for n in sizes:
        result = run_cluster(
            args.engine,
            n,
            args.senders,
            per_sender,
            args.block_interval_ms,
            batch=args.batch,
            rate=args.rate,
        )
        result.update(validators=n, bound_tx_per_s=cores * verify / n)
        rows.append(result)
    report = {
        "engine": args.engine,
        "verify_per_s_per_core": round(verify),
        "cores": cores,
        "transfers": per_sender * args.senders,
        "senders": args.senders,
        "block_interval_ms": args.block_interval_ms,
        "batch": args.batch,
        "offered_tx_per_s": args.rate or None,
        "clusters": rows,
        "conditions": conditions(),
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(
        f"gridchain bench consensus: {args.engine}, {report['transfers']} transfers from "
        f"{args.senders} senders in batches of {args.batch}, "
        f"{'offered ' + str(args.rate) + ' tx/s' if args.rate else 'closed loop'}, "
        f"{args.block_interval_ms} ms block interval, loopback"
    )
    print(f"Ed25519 verify: {report['verify_per_s_per_core']}/s per core, {cores} cores")
    print(
        f"{'validators':>10} {'committed':>10} {'tx/s':>8} {'p50 ms':>8} {'p99 ms':>8}"
        f" {'bound tx/s':>11}"
    )
    for r in rows:
        print(
            f"{r['validators']:>10} {r['committed']:>5}/{r['submitted']:<4} {r['tx_per_s']:>8.0f} "
            f"{r['latency_p50_ms']:>8.0f} {r['latency_p99_ms']:>8.0f} {r['bound_tx_per_s']:>11.0f}"
        )
    print(f"conditions: {json.dumps(report['conditions'])}")
    return 0
