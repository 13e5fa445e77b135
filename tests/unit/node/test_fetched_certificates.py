"""A block fetched while catching up commits only with a certificate of the engine's commit step.

Why: a prepare quorum (PBFT) or a prevote quorum (ePoB) shows that validators *considered* a
block, not that they committed it; such a block may never be committed by anyone, and a node
that accepts it from a lying peer forks away from the chain.  The node's runtime once checked
signers, quorum, block hash and height but not the step (the simulators' copy did): these tests
go through the node's real catch-up path (a peer announces a height, the node fetches blocks)
with a fake peer link that serves what the test chose.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from pathlib import Path
from typing import Any

import pytest

from gridchain.market.app import Application, BlockContext
from gridchain.node.config import load_config
from gridchain.node.runtime import Node
from gridchain.protocol.block import (
    Block,
    BlockHeader,
    Certificate,
    CommittedBlock,
    Vote,
    VoteStep,
    schedule_root,
    tx_root,
)
from tests.procs import Chain, make_chain


class ServingLink:
    """A peer network whose only peer serves ``blocks`` to catch-up requests."""

    def __init__(self, blocks: list[CommittedBlock]) -> None:
        self.blocks = blocks
        self.fetches = 0

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def broadcast_consensus(self, payload: bytes) -> None:
        return None

    def send_consensus(self, to: bytes, payload: bytes) -> None:
        return None

    def gossip_tx(self, tx_bytes: bytes) -> None:
        return None

    def flush_gossip(self) -> None:
        return None

    def reannounce_tx(self, tx_bytes: bytes) -> None:
        return None

    async def fetch_blocks(self, from_height: int, count: int) -> list[bytes]:
        self.fetches += 1
        return [
            b.encode() for b in self.blocks if from_height <= b.block.height < from_height + count
        ]

    def peer_info(self) -> list[dict[str, Any]]:
        return []

    def set_validators(self, keys: Collection[bytes]) -> None:
        return None

    def set_gateways(self, keys: Collection[bytes]) -> None:
        return None

    def stop_dialing(self) -> None:
        return None

    def announce_block(self, committed: bytes) -> None:
        return None

    @property
    def has_gateway_links(self) -> bool:
        return False


@pytest.fixture
def pbft_chain(tmp_path: Path) -> Chain:
    return make_chain(tmp_path / "chain", validators=4, engine="pbft")


def first_block(chain: Chain) -> Block:
    """A valid empty block at height 1 proposed by validator 1."""
    genesis = chain.bundle.genesis
    app = Application(genesis)
    proposer = chain.bundle.validators[1].key.public_key
    timestamp = genesis.genesis_time_ms + 500
    execution = app.execute_block(
        app.genesis_state(), (), BlockContext(1, timestamp, proposer), schedule=()
    )
    header = BlockHeader(
        chain_id=chain.chain_id,
        height=1,
        prev_hash=chain.chain_id,
        timestamp_ms=timestamp,
        proposer=proposer,
        round=0,
        benefit=0,
        tx_root=tx_root(()),
        schedule_root=schedule_root(()),
        state_root=execution.state_root,
    )
    return Block(header, (), ())


def quorum_certificate(chain: Chain, block: Block, step: VoteStep) -> Certificate:
    """Signatures of validators 1, 2 and 3 (a quorum of four) on ``block`` for ``step``."""
    vote = Vote(block.height, 0, block.hash(), int(step))
    keys = [v.key for v in chain.bundle.validators[1:]]
    return Certificate(vote, tuple(vote.sign(k, chain.chain_id) for k in keys))


async def catch_up_from(chain: Chain, served: CommittedBlock) -> Node:
    node = Node(load_config(chain.config_path(0)))
    link = ServingLink([served])
    node.attach_network(link)
    try:
        node.on_peer_height(chain.bundle.validators[1].key.public_key, 1)
        for _ in range(200):  # the node retries a refused batch; one fetch decides here
            await asyncio.sleep(0.01)
            if link.fetches or node.head.height:
                break
        await asyncio.sleep(0.01)
        return node
    finally:
        await node.stop()


async def test_a_fetched_block_certified_by_prepare_votes_is_refused(pbft_chain: Chain) -> None:
    block = first_block(pbft_chain)
    forged = CommittedBlock(block, quorum_certificate(pbft_chain, block, VoteStep.PREPARE))

    node = await catch_up_from(pbft_chain, forged)

    assert node.head.height == 0
    assert node.halted is None  # a lying peer is not this node's fault


async def test_a_fetched_block_certified_by_commit_votes_is_committed(pbft_chain: Chain) -> None:
    """The same block with a commit quorum: the check above refuses the step, nothing else."""
    block = first_block(pbft_chain)
    good = CommittedBlock(block, quorum_certificate(pbft_chain, block, VoteStep.COMMIT))

    node = await catch_up_from(pbft_chain, good)

    assert node.head.height == 1
    assert node.head.block_hash == block.hash()
