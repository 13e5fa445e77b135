"""CPU per transfer of the two steps every validator repeats for every transaction it carries.

Why: the PBFT throughput figure (``gridchain bench consensus``) is four validators sharing two
cores, so the work around the one signature check per transaction and validator decides how
close it gets to the verify bound; on this machine run-to-run noise of that figure (about
10 %) hides a change of a few microseconds per transaction.  These two figures isolate that
work in one process, with signatures already checked (the validator's signature memory), and
the garbage collector tuned as a running node's (node/gc_settle.py):

* ``admission``: ``Mempool.add`` of each transfer on the pending state, as gossip and the HTTP
  API admit it (the application's check, the remembered effect, the merge);
* ``follower``: what a backup does with a proposer's block of those transfers that its pool
  already admitted: decode the committed block from its bytes, check its structure, execute it
  with the pool's remembered effects, apply it to the state tree, commit it to LevelDB
  (synced) and update the pool.

Both are CPU microseconds per transaction (``time.process_time``), so the machine's load
moves them less than wall time; the bench prints the median of its trials.
"""

from __future__ import annotations

import gc
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from gridchain.bench.state import Ledger
from gridchain.market.app import BlockContext
from gridchain.node.gc_settle import YOUNG_THRESHOLD
from gridchain.node.mempool import Mempool
from gridchain.protocol.block import check_block_structure, decode_committed
from gridchain.protocol.encoding import forget_decoded
from gridchain.protocol.tx import Transaction, decode_tx


@contextmanager
def _node_gc() -> Iterator[None]:
    """The young generation collected as in a running validator, for the timed part only."""
    before = gc.get_threshold()
    gc.collect()
    gc.set_threshold(YOUNG_THRESHOLD, before[1], before[2])
    try:
        yield
    finally:
        gc.set_threshold(*before)


@contextmanager
def _validator(bundle: Any, raw: list[bytes]) -> Iterator[tuple[Ledger, Mempool]]:
    """A fresh validator's ledger at genesis (bench state's ``Ledger``, which commits as a
    validator does) and its pool, with every transaction of ``raw`` decoded and its signature
    checked (as gossip leaves them)."""
    forget_decoded()
    with tempfile.TemporaryDirectory() as tmp:
        ledger = Ledger.open(bundle.genesis, Path(tmp) / "db")
        try:
            genesis_ms = bundle.genesis.genesis_time_ms
            ctx = lambda: BlockContext(1, genesis_ms + 1, b"")  # noqa: E731
            pool = Mempool(ledger.app, ledger.state, ctx, max_txs=10**6, max_bytes=1 << 30)
            for data in raw:
                ledger.app.signatures.require(decode_tx(data))
            yield ledger, pool
        finally:
            ledger.store.close()


def admission_us(bundle: Any, raw: list[bytes]) -> float:
    """CPU microseconds per transaction to admit ``raw`` (signatures known)."""
    with _validator(bundle, raw) as (_, pool):
        txs: list[Transaction] = [decode_tx(data) for data in raw]
        with _node_gc():
            began = time.process_time()
            for tx, data in zip(txs, raw, strict=True):
                pool.add(tx, len(data))
            spent = time.process_time() - began
    return spent / len(raw) * 1e6


def follower_us(bundle: Any, raw: list[bytes], blocks: list[bytes]) -> float:
    """CPU microseconds per transaction for a backup to take ``blocks`` (a proposer's blocks
    of ``raw``, bench/transfers.py ``bench_pipeline(keep=...)``) after admitting ``raw``."""
    chain_id = bundle.genesis.chain_id
    with _validator(bundle, raw) as (ledger, pool):
        app = ledger.app
        for data in raw:
            pool.add(decode_tx(data), len(data))
        with _node_gc():
            began = time.process_time()
            for data in blocks:
                committed = decode_committed(data)
                block, header = committed.block, committed.block.header
                check_block_structure(block, chain_id, signatures=app.signatures)
                execution = app.execute_block(
                    ledger.state,
                    block.txs,
                    BlockContext(header.height, header.timestamp_ms, header.proposer),
                    known=pool.effect_of,
                )
                if execution.state_root != header.state_root:
                    raise RuntimeError(f"follower diverged at block {header.height}")
                ledger.commit(committed, execution)
                pool.update_after_commit(list(block.txs))
            spent = time.process_time() - began
        if len(pool):
            raise RuntimeError(f"{len(pool)} transactions were in no block")
    return spent / len(raw) * 1e6
