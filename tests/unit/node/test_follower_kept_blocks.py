"""The gateway's follower holds the recent certified blocks for readers within a count and a
byte bound (their encodings), and a block read back is the block it accepted."""

from __future__ import annotations

import pytest

from gridchain.genesis.builder import GenesisBundle, build_genesis
from gridchain.node.follower import Follower
from gridchain.protocol.block import CommittedBlock
from gridchain.protocol.tx import Transfer, sign_tx
from tests.helpers import GENESIS_TIME_MS, certify, key_factory, make_block


@pytest.fixture(scope="module")
def bundle() -> GenesisBundle:
    return build_genesis(
        chain_name="gridchain-test",
        genesis_time_ms=GENESIS_TIME_MS,
        validators=4,
        participants=2,
        engine="pbft",
        new_key=key_factory("follower-kept"),
        gateways=1,
    )


def _chain(bundle: GenesisBundle, count: int, txs_each: int) -> list[bytes]:
    """``count`` certified blocks after genesis, each with ``txs_each`` transfers, encoded."""
    chain_id = bundle.genesis.chain_id
    peer = bundle.participants[0].key
    proposer = bundle.validators[0].key.public_key
    keys = [v.key for v in bundle.validators[:3]]
    out, prev, nonce = [], chain_id, 0
    for height in range(1, count + 1):
        txs = []
        for _ in range(txs_each):
            txs.append(sign_tx(peer, chain_id, nonce, Transfer(bytes(20), 5, "kept")))
            nonce += 1
        block = make_block(chain_id, height, prev, txs, proposer=proposer)
        out.append(CommittedBlock(block, certify(block, keys, chain_id)).encode())
        prev = block.hash()
    return out


def _follow(follower: Follower, raws: list[bytes]) -> None:
    for raw in raws:
        follower.on_new_block(b"validator", raw)


def test_the_kept_blocks_stay_within_their_byte_bound_newest_first(bundle: GenesisBundle) -> None:
    raws = _chain(bundle, 12, txs_each=4)
    bound = sum(len(r) for r in raws[-3:])  # room for exactly the last three
    follower = Follower(bundle.genesis, bundle.gateways[0].key, [], keep_bytes=bound)
    _follow(follower, raws)
    assert follower.head.height == 12
    blocks, held = follower.kept()
    assert (blocks, held) == (3, bound)
    assert [h for h in range(1, 13) if follower.block(h) is not None] == [10, 11, 12]
    for height in (10, 11, 12):
        found = follower.block(height)
        assert found is not None
        assert found.encode() == raws[height - 1]
    assert [b.block.height for b in follower.blocks(9, 5)] == [10, 11, 12]
    # the senders' nonces cover the whole chain, not only the kept blocks
    assert follower.next_nonce(bundle.participants[0].key.public_key) == 48


def test_the_count_bound_holds_too_and_the_newest_block_is_always_kept(
    bundle: GenesisBundle,
) -> None:
    raws = _chain(bundle, 6, txs_each=1)
    by_count = Follower(bundle.genesis, bundle.gateways[0].key, [], keep_blocks=2)
    _follow(by_count, raws)
    assert by_count.kept() == (2, len(raws[4]) + len(raws[5]))
    tiny = Follower(bundle.genesis, bundle.gateways[0].key, [], keep_bytes=1)
    _follow(tiny, raws)
    assert tiny.kept() == (1, len(raws[5]))
    newest = tiny.block(6)
    assert newest is not None
    assert newest.encode() == raws[5]
