"""Committed transfers per second on one validator with synced writes, and Ed25519 verify rate.

Five figures from one run, each the median of ``--repeat`` trials:

* ``verify``: Ed25519 signature checks per second of transaction payloads (the floor cost of
  admitting a transaction), measured on pre-signed transactions;
* ``pipeline``: transfers per second through the validator's commit path in-process: decode,
  verify, mempool admission, block execution and one synced LevelDB batch per block, on a real
  store in a temporary directory; no HTTP;
* ``admission`` and ``follower``: CPU microseconds per transfer of admitting it with its
  signature known, and of a backup's path for a proposer's block of transfers its pool holds
  (bench/tx_path.py says what each covers and why);
* ``node``: transfers per second committed by a real ``gridchain node run`` process, submitted
  over HTTP by concurrent clients (one per sender, so nonces stay ordered), from the first
  submission until the last one is committed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from gridchain.api.client import NodeClient, NodeError
from gridchain.bench import tx_path
from gridchain.bench.cluster import bench_bundle, transfer_streams
from gridchain.bench.conditions import conditions, median
from gridchain.genesis.builder import GenesisBundle
from gridchain.genesis.cli import write_bundle
from gridchain.market.app import Application, BlockContext
from gridchain.node.mempool import Mempool
from gridchain.node.state_nodes import bind_genesis, ledger_state
from gridchain.node.store import Store
from gridchain.ports import free_port
from gridchain.protocol.block import (
    Block,
    BlockHeader,
    Certificate,
    CommittedBlock,
    Vote,
    schedule_root,
    tx_root,
)
from gridchain.protocol.keystore import TESTNET_SCRYPT_N
from gridchain.protocol.tx import Transaction, decode_tx


def _bundle(senders: int, block_interval_ms: int) -> GenesisBundle:
    return bench_bundle(
        "bench",
        engine="solo",
        validators=1,
        participants=senders + 1,
        block_interval_ms=block_interval_ms,
    )


def bench_verify(txs: list[Transaction], chain_id: bytes) -> float:
    started = time.perf_counter()
    for tx in txs:
        tx.verify_signature(chain_id)
    return len(txs) / (time.perf_counter() - started)


def bench_pipeline(
    bundle: Any,
    streams: list[list[Transaction]],
    block_txs: int,
    keep: list[bytes] | None = None,
) -> float:
    """In-process: admit every tx, then cut blocks of ``block_txs`` and commit each synced.

    ``keep``, if given, receives each committed block's encoding (bench/tx_path.py replays
    them as a follower)."""
    genesis = bundle.genesis
    app = Application(genesis)
    validator = bundle.validators[0].key
    raw = [tx.encode() for stream in streams for tx in stream]
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "db")
        bind_genesis(store, genesis.chain_id, genesis.canonical_json(), app.genesis_state())
        state, tree_nodes = ledger_state(store)
        height, prev, ts = 0, genesis.chain_id, genesis.genesis_time_ms
        ctx = lambda: BlockContext(height + 1, ts + 1, b"")  # noqa: E731
        pool = Mempool(app, state, ctx, max_txs=10**6, max_bytes=1 << 30)
        started = time.perf_counter()
        for data in raw:
            pool.add(decode_tx(data), len(data))
        while len(pool):
            txs = pool.reap(block_txs, 1 << 30)
            ts += 1
            execution = app.execute_block(
                state, txs, BlockContext(height + 1, ts, validator.public_key)
            )
            header = BlockHeader(
                genesis.chain_id, height + 1, prev, ts, validator.public_key, 0, 0,
                tx_root(tuple(txs)), schedule_root(()), execution.state_root,
            )  # fmt: skip
            block = Block(header, tuple(txs))
            vote = Vote(height + 1, 0, block.hash(), 2)
            cert = Certificate(vote, (vote.sign(validator, genesis.chain_id),))
            tree_writes = state.apply(execution.writes)
            committed = CommittedBlock(block, cert)
            store.commit_block(
                committed, execution.writes, tree_writes, archived=execution.archived
            )
            tree_nodes.written(tree_writes)
            if keep is not None:
                keep.append(committed.encode())
            height, prev = height + 1, block.hash()
            pool.update_after_commit(txs)
        elapsed = time.perf_counter() - started
        store.close()
    return len(raw) / elapsed


async def _submit_stream(client: NodeClient, txs: list[Transaction]) -> str:
    last = ""
    for tx in txs:
        last = await client.submit_tx(tx)
    return last


async def _drive_node(url: str, streams: list[list[Transaction]]) -> float:
    async with NodeClient(url) as client:
        started = time.perf_counter()
        lasts = await asyncio.gather(*(_submit_stream(client, s) for s in streams))
        for tx_hash in lasts:
            await client.wait_committed(tx_hash, timeout_s=120.0, poll_interval_s=0.005)
        elapsed = time.perf_counter() - started
    return sum(len(s) for s in streams) / elapsed


def run_node_trial(senders: int, per_sender: int) -> float:
    """Start a real node process on a fresh chain, drive it over HTTP, stop it."""
    bundle = _bundle(senders, block_interval_ms=50)
    streams = transfer_streams(bundle, per_sender)
    api_port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        write_bundle(
            bundle,
            directory,
            password="bench",  # noqa: S106 - throwaway keystores in a temporary directory
            scrypt_n=TESTNET_SCRYPT_N,
            base_api_port=api_port,
            base_p2p_port=free_port(),
        )
        config = directory / "nodes" / bundle.validators[0].name / "config.toml"
        log = (directory / "node.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "gridchain", "node", "run", "--config", str(config)],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{api_port}"
        try:
            _wait_healthy(url, proc)
            return asyncio.run(_drive_node(url, streams))
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
            log.close()


def _wait_healthy(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"benchmark node exited with {proc.returncode}")
        if asyncio.run(_healthy(url)):
            return
        time.sleep(0.05)
    raise RuntimeError("benchmark node did not become healthy")


async def _healthy(url: str) -> bool:
    async with NodeClient(url, request_timeout_s=1.0, retries=0) as client:
        try:
            await client.health()
        except NodeError:
            return False
        return True


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="gridchain bench transfers", description=__doc__)
    parser.add_argument("--txs", type=int, default=3000, help="transfers per trial")
    parser.add_argument("--senders", type=int, default=6)
    parser.add_argument("--block-txs", type=int, default=1000, help="pipeline block size")
    parser.add_argument("--repeat", type=int, default=3, help="trials; medians are reported")
    parser.add_argument("--skip-node", action="store_true", help="in-process figures only")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    per_sender = max(1, args.txs // args.senders)
    bundle = _bundle(args.senders, block_interval_ms=50)
    streams = transfer_streams(bundle, per_sender)
    flat = [tx for s in streams for tx in s]
    chain_id = bundle.genesis.chain_id
    verify = [bench_verify(flat, chain_id) for _ in range(args.repeat)]
    pipeline = [bench_pipeline(bundle, streams, args.block_txs) for _ in range(args.repeat)]
    raw = [tx.encode() for tx in flat]
    blocks: list[bytes] = []
    bench_pipeline(bundle, streams, args.block_txs, keep=blocks)  # a proposer's blocks
    admission = [tx_path.admission_us(bundle, raw) for _ in range(args.repeat)]
    follower = [tx_path.follower_us(bundle, raw, blocks) for _ in range(args.repeat)]
    node = (
        []
        if args.skip_node
        else [run_node_trial(args.senders, per_sender) for _ in range(args.repeat)]
    )
    result: dict[str, Any] = {
        "transfers_per_trial": len(flat),
        "trials": args.repeat,
        "ed25519_verify_per_s": round(median(verify)),
        "pipeline_tx_per_s": round(median(pipeline)),
        "pipeline_block_txs": args.block_txs,
        "admission_cpu_us_per_tx": round(median(admission), 1),
        "follower_cpu_us_per_tx": round(median(follower), 1),
        "node_http_tx_per_s": round(median(node)) if node else None,
        "node_block_interval_ms": 50,
        "synced_writes": True,
        "conditions": conditions(),
        "raw": {
            "verify": verify,
            "pipeline": pipeline,
            "admission": admission,
            "follower": follower,
            "node": node,
        },
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(
        f"gridchain bench transfers: {len(flat)} transfers from {args.senders} senders, "
        f"median of {args.repeat} trials"
    )
    print(f"  {'Ed25519 verify (tx payloads)':<44} {result['ed25519_verify_per_s']:>9} /s")
    print(
        f"  {'commit pipeline, in-process, synced':<44} {result['pipeline_tx_per_s']:>9} tx/s"
        f"  ({args.block_txs} tx blocks)"
    )
    print(
        f"  {'admission, signature known (CPU)':<44} {result['admission_cpu_us_per_tx']:>9} us/tx"
    )
    print(
        f"  {'follower block path, pool effects (CPU)':<44} "
        f"{result['follower_cpu_us_per_tx']:>9} us/tx  ({args.block_txs} tx blocks)"
    )
    if node:
        print(
            f"  {'node process over HTTP, synced':<44} {result['node_http_tx_per_s']:>9} tx/s"
            f"  (50 ms blocks)"
        )
    ratio = result["pipeline_tx_per_s"] / result["ed25519_verify_per_s"]
    print(f"  pipeline / verify ratio: {ratio:.2f}")
    print(f"  conditions: {json.dumps(result['conditions'])}")
    return 0
