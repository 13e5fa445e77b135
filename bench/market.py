"""Order matching throughput: the engine in memory, the application on the state, and a testnet.

Three figures, each over the same kind of seeded order stream (``--seed``): buys and sells in
equal parts, prices spread around a mid price in steps of 1 credit/kWh (a triangular spread, so
most orders land near the mid and the book crosses often), quantities 0.1-5 kWh, and a share of
icebergs (``--iceberg-share``, peak a quarter of the quantity):

* **engine**: ``market.book.match`` on a ``MemoryBook`` (one book), timing only the matching;
  the orders are built before the clock starts.  This is the rule engine's speed.
* **chain**: ``Application.execute_block`` on a ``MerkleState`` with signed ``PlaceOrder``
  transactions in blocks of ``--block-txs`` (signature checks excluded, as for a block built
  here): what a validator spends per order, with the book index, records, escrow and state
  root.
* **testnet** (``--validators N``, default 4, 0 to skip): a fresh PBFT testnet on loopback;
  pre-signed orders are posted in batches to the validators round robin and a websocket on the
  first validator timestamps every commit.  Orders per second = orders / (last commit - first
  POST).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import time
from typing import Any

from gridchain.api import models as m
from gridchain.api.client import NodeClient
from gridchain.bench.cluster import running_cluster
from gridchain.bench.conditions import conditions, median
from gridchain.genesis.builder import GenesisBundle, build_genesis
from gridchain.market.app import Application, BlockContext
from gridchain.market.book import BUY, SELL, BookOrder, MemoryBook, Rules, match
from gridchain.protocol.crypto import SigningKey, sha256
from gridchain.protocol.tx import PlaceOrder, Transaction, sign_tx

MID_MC_PER_KWH = 150_000
STEP_MC_PER_KWH = 1_000
SLOT_MS = 900_000


def order_stream(count: int, seed: int, iceberg_share: float) -> list[tuple[int, int, int, int]]:
    """(side, price mc/kWh, quantity Wh, peak Wh) of ``count`` orders, reproducibly."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        side = BUY if rng.random() < 0.5 else SELL
        offset = rng.randint(-10, 10) + rng.randint(-10, 10)
        price = MID_MC_PER_KWH + STEP_MC_PER_KWH * offset
        quantity = rng.randint(100, 5000)
        peak = max(1, quantity // 4) if rng.random() < iceberg_share and quantity > 4 else 0
        out.append((side, price, quantity, peak))
    return out


def bench_engine(
    stream: list[tuple[int, int, int, int]], rules: Rules, owners: int = 64
) -> dict[str, Any]:
    orders = [
        BookOrder(i.to_bytes(32, "big"), (i % owners).to_bytes(20, "big"), s, p, q, q, k)
        for i, (s, p, q, k) in enumerate(stream)
    ]
    book = MemoryBook()
    fills = 0
    started = time.perf_counter()
    for order in orders:
        fills += len(match(book, order, rules).fills)
    elapsed = time.perf_counter() - started
    return {
        "orders": len(orders),
        "fills": fills,
        "resting": len(book.by_id),
        "seconds": elapsed,
        "orders_per_s": len(orders) / elapsed,
    }


def _bundle(participants: int, validators: int, engine: str, **params: Any) -> GenesisBundle:
    counter = iter(range(10**6))
    return build_genesis(
        chain_name="gridchain-bench",
        genesis_time_ms=time.time_ns() // 1_000_000 - 1000,
        validators=validators,
        participants=participants,
        engine=engine,
        new_key=lambda: SigningKey(sha256(f"bench-market-{next(counter)}".encode())),
        balance_mc=10**15,
        extra_params={"slot_length_ms": SLOT_MS, "max_block_txs": 5000, **params},
    )


def _signed_orders(
    bundle: GenesisBundle, stream: list[tuple[int, int, int, int]], slot: int
) -> list[list[Transaction]]:
    """One stream of signed orders per participant, in nonce order."""
    chain_id = bundle.genesis.chain_id
    peers = bundle.participants
    streams: list[list[Transaction]] = [[] for _ in peers]
    for i, (side, price, quantity, peak) in enumerate(stream):
        who = i % len(peers)
        device = 3 if side == BUY else 1
        body = PlaceOrder(1, slot, side, device, price, quantity, peak, 0)
        streams[who].append(sign_tx(peers[who].key, chain_id, len(streams[who]), body))
    return streams


def bench_chain(
    stream: list[tuple[int, int, int, int]], rules: Rules, block_txs: int
) -> dict[str, Any]:
    bundle = _bundle(64, 1, "solo", matching_rule=rules.ranking, iceberg_execution=rules.iceberg)
    app = Application(bundle.genesis)
    state = app.genesis_state()
    now = time.time_ns() // 1_000_000
    slot = now // SLOT_MS + 8
    streams = _signed_orders(bundle, stream, slot)
    # Interleave the participants' streams (each stays in nonce order).
    txs = [s[i] for i in range(max(map(len, streams))) for s in streams if i < len(s)]
    elapsed = 0.0
    for height, start in enumerate(range(0, len(txs), block_txs), start=1):
        block = txs[start : start + block_txs]
        ctx = BlockContext(height, now + height, b"")
        began = time.perf_counter()
        execution = app.execute_block(state, block, ctx)
        state.apply(execution.writes)
        elapsed += time.perf_counter() - began
    return {
        "orders": len(txs),
        "block_txs": block_txs,
        "seconds": elapsed,
        "orders_per_s": len(txs) / elapsed,
        "state_entries": len(state),
    }


async def _drive(
    urls: list[str], streams: list[list[Transaction]], batch: int, timeout_s: float
) -> dict[str, Any]:
    committed: dict[str, float] = {}
    total = sum(len(s) for s in streams)
    trades = 0
    clients = {url: NodeClient(url, request_timeout_s=timeout_s) for url in dict.fromkeys(urls)}
    async with contextlib.AsyncExitStack() as stack:
        for client in clients.values():
            await stack.enter_async_context(client)

        async def listen() -> None:
            nonlocal trades
            async for event in clients[urls[0]].events():
                now = time.perf_counter()
                if isinstance(event, m.TradeEvent):
                    trades += 1
                if isinstance(event, m.BlockCommittedEvent):
                    for tx_hash in event.txs:
                        committed.setdefault(tx_hash, now)
                if len(committed) >= total:
                    return

        async def submit(url: str, txs: list[Transaction]) -> None:
            for i in range(0, len(txs), batch):
                chunk = [tx.encode().hex() for tx in txs[i : i + batch]]
                answer = await clients[url].submit_batch(chunk)
                if any(isinstance(r, m.Error) for r in answer.results):
                    raise RuntimeError(f"benchmark order refused: {answer.model_dump()}")

        listener = asyncio.create_task(listen())
        started = time.perf_counter()
        await asyncio.gather(*(submit(urls[i % len(urls)], s) for i, s in enumerate(streams)))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(listener, timeout=timeout_s)
    last = max(committed.values()) if committed else started
    return {
        "submitted": total,
        "committed": len(committed),
        "trades": trades,
        "seconds": last - started,
        "orders_per_s": len(committed) / (last - started) if committed else 0.0,
    }


def bench_testnet(
    stream: list[tuple[int, int, int, int]],
    rules: Rules,
    validators: int,
    *,
    senders: int,
    batch: int,
    block_interval_ms: int,
) -> dict[str, Any]:
    engine = "solo" if validators == 1 else "pbft"
    bundle = _bundle(
        senders,
        validators,
        engine,
        matching_rule=rules.ranking,
        iceberg_execution=rules.iceberg,
        block_interval_ms=block_interval_ms,
    )
    slot = time.time_ns() // 1_000_000 // SLOT_MS + 8
    streams = _signed_orders(bundle, stream, slot)
    with running_cluster(bundle) as urls:
        result = asyncio.run(_drive(urls, streams, batch, timeout_s=180))
    result.update(validators=validators, engine=engine, batch=batch, senders=senders)
    return result


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="gridchain bench market", description=__doc__)
    parser.add_argument("--orders", type=int, default=200_000, help="orders for the engine")
    parser.add_argument("--chain-orders", type=int, default=20_000, help="orders on the state")
    parser.add_argument("--testnet-orders", type=int, default=4_000, help="orders via a testnet")
    parser.add_argument("--iceberg-share", type=float, default=0.5)
    parser.add_argument("--matching-rule", choices=["price_time", "adbev"], default="price_time")
    parser.add_argument(
        "--iceberg-execution",
        choices=["standard", "aggressive", "passive", "adaptive"],
        default="standard",
    )
    parser.add_argument("--block-txs", type=int, default=1000, help="orders per block (chain)")
    parser.add_argument("--validators", type=int, default=4, help="testnet size; 0 skips it")
    parser.add_argument("--senders", type=int, default=16)
    parser.add_argument("--batch", type=int, default=100, help="orders per POST /v1/txs")
    parser.add_argument("--block-interval-ms", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3, help="engine runs (median reported)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    rules = Rules(ranking=args.matching_rule, iceberg=args.iceberg_execution)

    engine_runs = [
        bench_engine(order_stream(args.orders, args.seed, args.iceberg_share), rules)
        for _ in range(args.repeat)
    ]
    engine = min(engine_runs, key=lambda r: abs(r["orders_per_s"] - median(
        [x["orders_per_s"] for x in engine_runs])))  # fmt: skip
    chain = bench_chain(
        order_stream(args.chain_orders, args.seed, args.iceberg_share), rules, args.block_txs
    )
    testnet = None
    if args.validators > 0:
        testnet = bench_testnet(
            order_stream(args.testnet_orders, args.seed, args.iceberg_share),
            rules,
            args.validators,
            senders=args.senders,
            batch=args.batch,
            block_interval_ms=args.block_interval_ms,
        )
    report = {
        "matching_rule": args.matching_rule,
        "iceberg_execution": args.iceberg_execution,
        "iceberg_share": args.iceberg_share,
        "seed": args.seed,
        "engine": engine,
        "chain": chain,
        "testnet": testnet,
        "conditions": conditions(),
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(
        f"gridchain bench market: {args.matching_rule}, {args.iceberg_execution} icebergs "
        f"({args.iceberg_share:.0%} of orders), prices around {MID_MC_PER_KWH // 1000} "
        f"credits/kWh, seed {args.seed}"
    )
    print(f"{'':>8} {'orders':>8} {'orders/s':>10}  notes")
    print(
        f"{'engine':>8} {engine['orders']:>8} {engine['orders_per_s']:>10.0f}  "
        f"one book in memory, {engine['fills']} fills, {engine['resting']} left resting "
        f"(median of {args.repeat})"
    )
    print(
        f"{'chain':>8} {chain['orders']:>8} {chain['orders_per_s']:>10.0f}  "
        f"execute_block on the Merkle state, {chain['block_txs']} orders per block"
    )
    if testnet is not None:
        print(
            f"{'testnet':>8} {testnet['committed']:>8} {testnet['orders_per_s']:>10.0f}  "
            f"{testnet['validators']} validators ({testnet['engine']}), {testnet['trades']} "
            f"trades, batches of {testnet['batch']} from {testnet['senders']} senders, "
            "loopback"
        )
    print(f"conditions: {json.dumps(report['conditions'])}")
    return 0
