"""bench/tx_path.py: the admission and follower figures run the shipped path to the end."""

from __future__ import annotations

import dataclasses
import json

import pytest

from gridchain.bench import transfers, tx_path
from gridchain.bench.cluster import bench_bundle, transfer_streams
from gridchain.protocol.block import decode_committed


def _chain(per_sender: int = 30) -> tuple[object, list[bytes], list[bytes]]:
    bundle = bench_bundle("bench", engine="solo", validators=1, participants=3)
    streams = transfer_streams(bundle, per_sender)
    raw = [tx.encode() for stream in streams for tx in stream]
    blocks: list[bytes] = []
    transfers.bench_pipeline(bundle, streams, 20, keep=blocks)
    return bundle, raw, blocks


def test_a_follower_takes_every_block_of_the_pool_it_admitted() -> None:
    bundle, raw, blocks = _chain()
    assert len(blocks) == 3  # 60 transfers in blocks of 20
    assert tx_path.follower_us(bundle, raw, blocks) > 0
    assert tx_path.admission_us(bundle, raw) > 0


def test_a_follower_missing_a_block_says_so() -> None:
    bundle, raw, blocks = _chain()
    with pytest.raises(RuntimeError, match="20 transactions were in no block"):
        tx_path.follower_us(bundle, raw, blocks[:-1])


def test_a_follower_checks_each_block_s_state_root() -> None:
    bundle, raw, blocks = _chain()
    committed = decode_committed(blocks[1])
    header = dataclasses.replace(committed.block.header, state_root=b"\x00" * 32)
    block = dataclasses.replace(committed.block, header=header)
    forged = dataclasses.replace(committed, block=block).encode()
    with pytest.raises(RuntimeError, match="follower diverged at block 2"):
        tx_path.follower_us(bundle, raw, [blocks[0], forged, blocks[2]])


def test_bench_transfers_prints_both_figures(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        transfers.main(["--txs", "40", "--senders", "2", "--repeat", "1", "--skip-node", "--json"])
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["admission_cpu_us_per_tx"] > 0
    assert report["follower_cpu_us_per_tx"] > 0
    assert len(report["raw"]["admission"]) == len(report["raw"]["follower"]) == 1
