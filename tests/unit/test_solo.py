"""The solo engine's action sequences and its guard against signing twice.

Why: the runtime applies an engine's actions in order, so the order is the contract: the
signing record must be persisted before the commit (and the signature) leaves the engine, or a
crash between the two could let a restarted validator sign a second, different block at the
same height.  The certificate it produces must satisfy the same check a node that is behind
applies to fetched blocks.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gridchain.consensus.engine import ChainHead, CommitBlock, Persist, RequestProposal, SetTimer
from gridchain.consensus.solo import LAST_SIGNED_KEY, DoubleSignError, SoloEngine
from gridchain.genesis.builder import GenesisBundle
from gridchain.node.store import Store
from gridchain.protocol.block import Block, Vote, VoteStep
from gridchain.protocol.crypto import sha256
from gridchain.protocol.errors import SignatureError
from tests.helpers import det_key, make_block

INTERVAL = 1_000
T0 = 50_000


def _engine(bundle: GenesisBundle) -> SoloEngine:
    return SoloEngine(bundle.validators[0].key, bundle.genesis.chain_id, INTERVAL)


def _genesis_head(bundle: GenesisBundle) -> ChainHead:
    return ChainHead(0, bundle.genesis.chain_id, bundle.genesis.genesis_time_ms)


def _block(
    bundle: GenesisBundle, head: ChainHead, *, height: int | None = None, memo: int = 0
) -> Block:
    """A block on ``head``; ``memo`` varies the header so two blocks at one height differ."""
    return make_block(
        bundle.genesis.chain_id,
        head.height + 1 if height is None else height,
        head.block_hash,
        state_root=sha256(b"state %d" % memo),
        proposer=bundle.validators[0].key.public_key,
        timestamp_ms=head.timestamp_ms + 1,
    )


def _proposing(bundle: GenesisBundle, head: ChainHead) -> SoloEngine:
    """An engine that has started on ``head`` and asked for a proposal."""
    engine = _engine(bundle)
    engine.start(head, {}, T0)
    assert isinstance(engine.on_tick(T0 + INTERVAL)[0], RequestProposal)
    return engine


def test_start_arms_the_timer_one_interval_ahead(bundle: GenesisBundle) -> None:
    assert _engine(bundle).start(_genesis_head(bundle), {}, T0) == [SetTimer(T0 + INTERVAL)]


def test_a_tick_before_time_re_arms_the_same_timer(bundle: GenesisBundle) -> None:
    engine = _engine(bundle)
    engine.start(_genesis_head(bundle), {}, T0)
    assert engine.on_tick(T0 + INTERVAL - 1) == [SetTimer(T0 + INTERVAL)]
    assert engine.on_tick(T0) == [SetTimer(T0 + INTERVAL)]


def test_a_tick_at_time_requests_the_next_block(bundle: GenesisBundle) -> None:
    head = ChainHead(4, sha256(b"block 4"), 1_700_000_000_000)
    engine = _engine(bundle)
    engine.start(head, {}, T0)
    assert engine.on_tick(T0 + INTERVAL) == [
        RequestProposal(
            height=5, round=0, prev_hash=sha256(b"block 4"), min_timestamp_ms=1_700_000_000_001
        )
    ]
    assert engine.on_tick(T0 + 5 * INTERVAL) == []  # one request at a time


def test_no_proposal_waits_another_interval(bundle: GenesisBundle) -> None:
    engine = _proposing(bundle, _genesis_head(bundle))
    later = T0 + 3 * INTERVAL
    assert engine.on_proposal(None, later) == [SetTimer(later + INTERVAL)]
    assert engine.on_tick(later + INTERVAL - 1) == [SetTimer(later + INTERVAL)]
    assert isinstance(engine.on_tick(later + INTERVAL)[0], RequestProposal)


def test_a_proposal_is_persisted_before_it_is_committed(bundle: GenesisBundle) -> None:
    head = _genesis_head(bundle)
    chain_id = bundle.genesis.chain_id
    validator = bundle.validators[0].key.public_key
    block = _block(bundle, head)
    engine = _proposing(bundle, head)

    actions = engine.on_proposal(block, T0 + INTERVAL)

    assert [type(a) for a in actions] == [Persist, CommitBlock]
    persist, commit = actions
    assert isinstance(persist, Persist)
    assert isinstance(commit, CommitBlock)
    assert persist == Persist(LAST_SIGNED_KEY, (1).to_bytes(8, "big") + block.hash())
    assert commit.block == block
    certificate = commit.certificate
    assert certificate.vote == Vote(1, 0, block.hash(), int(VoteStep.COMMIT))
    certificate.verify(chain_id, [validator], 1)  # raises if it does not verify
    with pytest.raises(SignatureError):
        certificate.verify(chain_id, [det_key("someone else").public_key], 1)
    with pytest.raises(SignatureError):
        certificate.verify(chain_id, [validator], 2)
    with pytest.raises(SignatureError):
        certificate.verify(sha256(b"another chain"), [validator], 1)


def test_after_a_commit_the_next_request_builds_on_the_new_head(bundle: GenesisBundle) -> None:
    head = _genesis_head(bundle)
    block = _block(bundle, head)
    engine = _proposing(bundle, head)
    engine.on_proposal(block, T0 + INTERVAL)
    assert engine.on_tick(T0 + 9 * INTERVAL) == []  # waiting for the commit to come back

    new_head = ChainHead(1, block.hash(), block.header.timestamp_ms)
    now = T0 + 2 * INTERVAL
    assert engine.on_block_committed(new_head, now) == [SetTimer(now + INTERVAL)]
    assert engine.on_tick(now + INTERVAL) == [
        RequestProposal(2, 0, block.hash(), block.header.timestamp_ms + 1)
    ]
    assert engine.status() == {"engine": "solo", "height": 1, "round": 0}


@pytest.mark.parametrize("offset", [0, 2, 7])
def test_a_block_at_the_wrong_height_is_not_signed(bundle: GenesisBundle, offset: int) -> None:
    head = ChainHead(3, sha256(b"block 3"), 1_000)
    engine = _proposing(bundle, head)
    now = T0 + INTERVAL
    actions = engine.on_proposal(_block(bundle, head, height=head.height + offset), now)
    assert actions == [SetTimer(now + INTERVAL)]
    # The engine signed nothing, so the right block at height 4 can still be signed.
    engine.on_tick(now + INTERVAL)
    assert [type(a) for a in engine.on_proposal(_block(bundle, head), now)] == [
        Persist,
        CommitBlock,
    ]


def test_a_restarted_engine_never_signs_a_second_block_at_a_height(
    tmp_path: Path, bundle: GenesisBundle
) -> None:
    """The signed record goes through the real store, as the runtime does it, and back."""
    head = _genesis_head(bundle)
    signed = _block(bundle, head, memo=1)
    engine = _proposing(bundle, head)
    persist = engine.on_proposal(signed, T0 + INTERVAL)[0]
    assert isinstance(persist, Persist)
    store = Store(tmp_path / "ledger")
    store.persist_consensus({persist.key: persist.value})
    store.close()
    # Crash before the commit: the head is still genesis.
    store = Store(tmp_path / "ledger")
    try:
        records = store.consensus_records()
    finally:
        store.close()

    restarted = _engine(bundle)
    restarted.start(head, records, T0)
    restarted.on_tick(T0 + INTERVAL)
    with pytest.raises(DoubleSignError):
        restarted.on_proposal(_block(bundle, head, memo=2), T0 + INTERVAL)

    again = _engine(bundle)
    again.start(head, records, T0)
    again.on_tick(T0 + INTERVAL)
    actions = again.on_proposal(signed, T0 + INTERVAL)  # the same block may be signed again
    assert [type(a) for a in actions] == [Persist, CommitBlock]


def test_a_fresh_engine_without_records_signs_any_block(bundle: GenesisBundle) -> None:
    """Control for the test above: without the persisted record the second block is signed."""
    head = _genesis_head(bundle)
    engine = _proposing(bundle, head)
    assert [type(a) for a in engine.on_proposal(_block(bundle, head, memo=2), T0)] == [
        Persist,
        CommitBlock,
    ]


def test_a_solo_engine_ignores_messages(bundle: GenesisBundle) -> None:
    engine = _engine(bundle)
    engine.start(_genesis_head(bundle), {}, T0)
    vote = Vote(1, 0, sha256(b"x"), int(VoteStep.COMMIT))
    assert engine.on_message(det_key("peer").public_key, vote, T0) == []


def test_the_running_engine_refuses_a_second_block_at_a_signed_height(
    bundle: GenesisBundle,
) -> None:
    head = _genesis_head(bundle)
    engine = _proposing(bundle, head)
    engine.on_proposal(_block(bundle, head, memo=1), T0 + INTERVAL)
    with pytest.raises(DoubleSignError):
        engine.on_proposal(_block(bundle, head, memo=2), T0 + INTERVAL)


def test_a_block_on_another_parent_is_not_signed(bundle: GenesisBundle) -> None:
    """Signing it would record the height as signed and lock out the right block."""
    head = ChainHead(3, sha256(b"block 3"), 1_000)
    engine = _proposing(bundle, head)
    now = T0 + INTERVAL
    fork = _block(bundle, ChainHead(3, sha256(b"another block 3"), 1_000))
    assert fork.height == 4
    assert engine.on_proposal(fork, now) == [SetTimer(now + INTERVAL)]
    engine.on_tick(now + INTERVAL)
    assert [type(a) for a in engine.on_proposal(_block(bundle, head), now)] == [
        Persist,
        CommitBlock,
    ]
