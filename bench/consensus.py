"""Committed transactions per second and commit latency of a validator cluster on loopback.

For each cluster size, a fresh chain is written and every validator runs as its own
``gridchain node run`` process.  Pre-signed transfers from ``--senders`` accounts are submitted
over HTTP, each sender to its own validator (round robin) and in nonce order; a websocket on
the first validator timestamps every committed transaction.  Latency is commit time minus the
moment its POST was sent (for PoB a block is committed when it is final, so this is finality
latency); throughput is all transfers over the time from the first POST to the last commit.

Printed beside them: the per-core Ed25519 verify rate, and the bound it implies when every
validator checks every signature once: ``cores x verify rate / validators``.  The rate is
measured right before and right after each cluster's run (the median of three passes over 500
signatures each time) and the row's bound uses their mean: on a shared machine the rate can
nearly double or halve within minutes (4,000-7,900/s on 2026-12-06), and a bound measured
before every row would be minutes old for the later ones.  Both rates are printed with the
row, and its fraction of the bound.
``--repeat N`` runs each cluster N times, each run with its own bound, and prints the run whose
fraction of its bound is the median, every run's tx/s and bound listed under it.

One run measures every (engine, validators) pair of ``--engines`` x ``--validators`` (solo
always runs one validator) and prints one table.  PoB and ePoB rounds last ``--round-ms``; PoB
finalizes at ``--finality-depth``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import time
import traceback
from typing import Any

from gridchain.api import models as m
from gridchain.api.client import NodeClient
from gridchain.bench.cluster import bench_bundle, running_cluster, transfer_streams
from gridchain.bench.conditions import conditions, median
from gridchain.bench.transfers import bench_verify
from gridchain.genesis.schema import ConsensusParams
from gridchain.protocol.tx import Transaction

ENGINES = ("solo", "pbft", "pob", "epob")
#: Default PoB/ePoB round length of this benchmark (genesis default: 2000 ms).
DEFAULT_ROUND_MS = 500


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
    clients = {url: NodeClient(url, request_timeout_s=timeout_s) for url in dict.fromkeys(urls)}
    async with contextlib.AsyncExitStack() as stack:
        for client in clients.values():
            await stack.enter_async_context(client)

        async def listen() -> None:
            async for event in clients[urls[0]].events():
                now = time.perf_counter()
                if isinstance(event, m.BlockCommittedEvent):
                    for tx_hash in event.txs:
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
                answer = await clients[url].submit_batch([tx.encode().hex() for tx in chunk])
                if any(isinstance(r, m.Error) for r in answer.results):
                    raise RuntimeError(f"benchmark transfer refused: {answer.model_dump()}")

        listener = asyncio.create_task(listen())
        started = time.perf_counter()
        await asyncio.gather(*(submit(i, urls[i % len(urls)], s) for i, s in enumerate(streams)))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(listener, timeout=timeout_s)
    done = [h for h in submitted if h in committed]
    latencies = [committed[h] - submitted[h] for h in done]
    last = max(committed.values()) if committed else started
    return {
        "submitted": len(submitted),
        "committed": len(done),
        "tx_per_s": len(done) / (last - started) if done else 0.0,
        # None (JSON null) when nothing committed: no latency was measured.
        "latency_p50_ms": 1000 * _percentile(latencies, 0.50) if latencies else None,
        "latency_p99_ms": 1000 * _percentile(latencies, 0.99) if latencies else None,
    }


def consensus_params(engine: str, round_ms: int, finality_depth: int) -> dict[str, Any]:
    """The genesis ``consensus`` section for ``engine`` (round and depth only where used)."""
    if engine == "pob":
        return {"round_ms": round_ms, "finality_depth": finality_depth}
    if engine == "epob":
        return {"round_ms": round_ms}
    return {}


def chain_params(engine: str, empty_blocks: str) -> dict[str, Any]:
    """Genesis ``params`` for ``empty_blocks`` "on" or "off" (the genesis default).

    PoB needs no empty blocks from genesis: its engine asks the node for empty blocks on a
    pending branch with content (``RequestProposal.allow_empty``) until that content is final.
    """
    if empty_blocks == "on":
        return {"empty_blocks": True}
    return {}


def parse_engines(text: str) -> list[str]:
    """``pbft,pob`` -> ["pbft", "pob"]; unknown names raise ValueError."""
    engines = [e.strip() for e in text.split(",") if e.strip()]
    unknown = [e for e in engines if e not in ENGINES]
    if unknown or not engines:
        raise ValueError(f"engines are among {', '.join(ENGINES)}; got {text!r}")
    return list(dict.fromkeys(engines))


def parse_sizes(text: str) -> list[int]:
    sizes = [int(x) for x in text.split(",") if x.strip()]
    if not sizes or min(sizes) < 1:
        raise ValueError(f"validator counts are positive integers; got {text!r}")
    return list(dict.fromkeys(sizes))


def pairs(engines: list[str], sizes: list[int]) -> list[tuple[str, int]]:
    """Every (engine, validators) pair to run, in order; solo runs exactly one validator."""
    out: list[tuple[str, int]] = []
    for engine in engines:
        for n in [1] if engine == "solo" else sizes:
            if (engine, n) not in out:
                out.append((engine, n))
    return out


def engine_available(engine: str) -> bool:
    """Whether this build has the engine's package (pob and epob arrived late)."""
    if engine in ("solo", "pbft"):
        return True
    return importlib.util.find_spec(f"gridchain.consensus.{engine}") is not None


def run_cluster(
    engine: str,
    validators: int,
    senders: int,
    per_sender: int,
    block_ms: int,
    *,
    batch: int,
    rate: float,
    round_ms: int = DEFAULT_ROUND_MS,
    finality_depth: int = ConsensusParams().finality_depth,
    timeout_s: float = 120.0,
    empty_blocks: str = "off",
    max_block_txs: int = 5000,
) -> dict[str, Any]:
    bundle = bench_bundle(
        "bench-consensus",
        engine=engine,
        validators=validators,
        participants=senders + 1,
        block_interval_ms=block_ms,
        consensus_params=consensus_params(engine, round_ms, finality_depth),
        max_block_txs=max_block_txs,
        **chain_params(engine, empty_blocks),
    )
    streams = transfer_streams(bundle, per_sender)
    with running_cluster(bundle) as urls:
        return asyncio.run(_drive(urls, streams, timeout_s=timeout_s, batch=batch, rate=rate))


def _row(engine: str, n: int, args: argparse.Namespace, per_sender: int) -> dict[str, Any]:
    base: dict[str, Any] = {"engine": engine, "validators": n}
    if not engine_available(engine):
        return {**base, "error": f"consensus/{engine} is not in this build"}
    try:
        result = run_cluster(
            engine,
            n,
            args.senders,
            per_sender,
            args.block_interval_ms,
            batch=args.batch,
            rate=args.rate,
            round_ms=args.round_ms,
            finality_depth=args.finality_depth,
            timeout_s=args.timeout,
            empty_blocks=args.empty_blocks,
            max_block_txs=args.max_block_txs,
        )
    except Exception as exc:  # noqa: BLE001 - one broken engine must not lose the other rows
        text = "".join(traceback.format_exception_only(exc)).strip()
        lines = [line for line in text.splitlines() if line.strip()]
        # the first line names the failure; a node's log tail ends with its traceback
        summary = lines[0][:200] + (
            "  ...  " + " | ".join(lines[-3:])[-600:] if len(lines) > 1 else ""
        )
        return {**base, "error": summary}
    return {**base, **result}


#: What ``median_run`` keeps of every run of a repeated cluster.
_RUN_FIGURES = (
    "tx_per_s",
    "latency_p99_ms",
    "bound_tx_per_s",
    "of_bound",
    "verify_per_s_before",
    "verify_per_s_after",
)


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One row for a pair's repeated runs: the run whose fraction of its own bound is the
    median (the lower of the two middle ones for an even count), with every run's tx/s and
    bound under ``runs``.  A failed run is never hidden: the row is then the first failure,
    with how many of the runs failed."""
    failed = [run for run in runs if "error" in run]
    if failed and len(runs) == 1:
        return failed[0]
    if failed:
        return {**failed[0], "failed_runs": len(failed), "repeat": len(runs)}
    for run in runs:
        run["of_bound"] = run["tx_per_s"] / run["bound_tx_per_s"]
    if len(runs) == 1:
        return runs[0]
    ordered = sorted(runs, key=lambda run: float(run["of_bound"]))
    chosen = ordered[(len(ordered) - 1) // 2]
    return {
        **chosen,
        "runs": [{key: run[key] for key in _RUN_FIGURES} for run in runs],
    }


def format_table(report: dict[str, Any]) -> list[str]:
    """The human table: one line per (engine, validators)."""
    lines = [
        f"{'engine':<7}{'validators':>10} {'committed':>11} {'tx/s':>8} {'p50 ms':>8} "
        f"{'p99 ms':>8} {'bound tx/s':>11} {'of bound':>9} {'verify/s before, after':>23}"
    ]
    for r in report["clusters"]:
        head = f"{r['engine']:<7}{r['validators']:>10} "
        rates = f"{r['verify_per_s_before']:>14}, {r['verify_per_s_after']}"
        if "error" in r:
            lines.append(
                f"{head}{'-':>11} {'-':>8} {'-':>8} {'-':>8} {r['bound_tx_per_s']:>11.0f} "
                f"{'-':>9} {rates}"
            )
            failed = f" ({r['failed_runs']} of {r['repeat']} runs failed)" if "repeat" in r else ""
            lines.append(f"{'':<7}  error{failed}: {r['error']}")
            continue
        p50, p99 = (
            "-" if r[k] is None else f"{r[k]:.0f}" for k in ("latency_p50_ms", "latency_p99_ms")
        )
        of_bound = r["tx_per_s"] / r["bound_tx_per_s"]
        lines.append(
            f"{head}{r['committed']:>6}/{r['submitted']:<4} {r['tx_per_s']:>8.0f} "
            f"{p50:>8} {p99:>8} {r['bound_tx_per_s']:>11.0f} {of_bound:>9.2f} {rates}"
        )
        if "runs" in r:
            each = ", ".join(
                f"{run['tx_per_s']:.0f} ({run['bound_tx_per_s']:.0f})" for run in r["runs"]
            )
            lines.append(
                f"{'':<7}  median of {len(r['runs'])} runs by fraction; tx/s (bound): {each}"
            )
    return lines


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="gridchain bench consensus", description=__doc__)
    parser.add_argument(
        "--engines",
        "--engine",
        dest="engines",
        default="pbft",
        help=f"comma-separated engines among {','.join(ENGINES)} (--engine is an alias)",
    )
    parser.add_argument("--validators", default="4,7,16", help="comma-separated cluster sizes")
    parser.add_argument("--txs", type=int, default=4000, help="transfers per cluster")
    parser.add_argument("--senders", type=int, default=16)
    parser.add_argument("--block-interval-ms", type=int, default=100)
    parser.add_argument(
        "--round-ms",
        type=int,
        default=DEFAULT_ROUND_MS,
        help="PoB/ePoB round length (genesis consensus.round_ms)",
    )
    parser.add_argument(
        "--finality-depth",
        type=int,
        default=ConsensusParams().finality_depth,
        help="PoB: notarized blocks in a row that make a block final",
    )
    parser.add_argument(
        "--max-block-txs",
        type=int,
        default=5000,
        help="genesis params.max_block_txs (a round must fit verifying a whole block)",
    )
    parser.add_argument(
        "--empty-blocks",
        choices=["on", "off"],
        default="off",
        help="genesis params.empty_blocks (off, the default, still lets PoB finalize: its "
        "validators build empty blocks only on pending content)",
    )
    parser.add_argument(
        "--batch", type=int, default=50, help="transactions per POST /v1/txs (1: one per request)"
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="offered load in tx/s (open loop); 0 submits as fast as the nodes accept",
    )
    parser.add_argument(
        "--timeout", type=float, default=120.0, help="seconds to wait for commits per cluster"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="runs of each cluster, each with its own bound; the row is the run with the median "
        "fraction of its bound, every run listed under it (for a shared, noisy machine)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    try:
        engines = parse_engines(args.engines)
        sizes = parse_sizes(args.validators)
    except ValueError as exc:
        parser.error(str(exc))
    per_sender = max(1, args.txs // args.senders)

    probe = bench_bundle("bench-consensus", engine="pbft", validators=4, participants=5)
    sample = [tx for s in transfer_streams(probe, 500) for tx in s]

    def verify_rate() -> float:
        return median([bench_verify(sample, probe.genesis.chain_id) for _ in range(3)])

    cores = os.cpu_count() or 1
    rows = []
    rates: list[float] = []
    for engine, n in pairs(engines, sizes):
        runs = []
        for _ in range(args.repeat):
            before = verify_rate()
            run = _row(engine, n, args, per_sender)
            after = verify_rate()
            rates += [before, after]
            run["verify_per_s_before"], run["verify_per_s_after"] = round(before), round(after)
            run["bound_tx_per_s"] = cores * (before + after) / 2 / n
            runs.append(run)
        rows.append(median_run(runs))
    report = {
        "engines": engines,
        "engine": engines[0] if len(engines) == 1 else None,
        "verify_per_s_per_core": round(median(rates)),
        "cores": cores,
        "transfers": per_sender * args.senders,
        "senders": args.senders,
        "block_interval_ms": args.block_interval_ms,
        "round_ms": args.round_ms,
        "finality_depth": args.finality_depth,
        "empty_blocks": args.empty_blocks,
        "max_block_txs": args.max_block_txs,
        "batch": args.batch,
        "offered_tx_per_s": args.rate or None,
        "repeat": args.repeat,
        "clusters": rows,
        "conditions": conditions(),
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(
        f"gridchain bench consensus: {', '.join(engines)}; {report['transfers']} transfers from "
        f"{args.senders} senders in batches of {args.batch}, "
        f"{'offered ' + str(args.rate) + ' tx/s' if args.rate else 'closed loop'}, "
        f"{args.block_interval_ms} ms block interval (solo/pbft/epob), "
        f"{args.round_ms} ms rounds (pob/epob), PoB finality depth {args.finality_depth}, "
        f"empty blocks {args.empty_blocks}, at most {args.max_block_txs} txs per block, "
        "loopback; latency = commit (PoB: final) seen on validator 1's websocket - POST sent"
    )
    print(
        f"Ed25519 verify: {report['verify_per_s_per_core']}/s per core (median of the run), "
        f"{cores} cores; a row's bound = cores x its mean verify/s / validators"
    )
    print("\n".join(format_table(report)))
    print(f"conditions: {json.dumps(report['conditions'])}")
    return 0
