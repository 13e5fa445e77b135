"""The PoB engine's rules, one validator at a time, with hand-built blocks and announces.

Why: the cluster simulator (tests/sim/test_pob_sim.py) shows the rules hold together under
faults; these tests pin each rule on its own (who wins a round, how ties break, which branch
is chosen, when a block is final, what is evidence, what a restart may not do), so a change
to one of them fails here with a message that names it.  Validator 0 is the engine under
test; the others are played by hand with their real keys.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TypeVar

import pytest

from gridchain.consensus.certificates import CommitRule, check_certificate
from gridchain.consensus.engine import (
    Action,
    Broadcast,
    ChainHead,
    CommitBlock,
    Persist,
    ReportEvidence,
    RequestProposal,
    Send,
    SetTimer,
    SyncTo,
    ValidateBlock,
)
from gridchain.consensus.pob import (
    GUARD_KEY,
    LOCK_KEY,
    BlockTree,
    PersistedStateError,
    PobConfigError,
    PobEngine,
    decode_message,
    tie_key,
)
from gridchain.consensus.pob.budget import MIN_BLOCK_TXS, BlockBudget, round_budget
from gridchain.consensus.pob.messages import (
    NO_BLOCK,
    Announce,
    BlockMessage,
    BlockRequest,
    GuardRecord,
    LockRecord,
    decode_guard,
    decode_lock,
    make_announce,
    make_block_message,
)
from gridchain.protocol.address import address_of
from gridchain.protocol.block import (
    MAX_BLOCK_BYTES,
    MAX_BLOCK_TXS,
    Block,
    BlockHeader,
    VoteSignature,
    VoteStep,
    schedule_root,
    tx_root,
)
from gridchain.protocol.crypto import SigningKey, sha256
from gridchain.protocol.errors import DecodeError, FieldValueError
from gridchain.protocol.tx import Transfer, sign_tx
from tests.helpers import det_key

A = TypeVar("A")
KEYS = [det_key(f"pob-unit/{i}") for i in range(4)]
VALS = tuple(k.public_key for k in KEYS)
CID = sha256(b"pob-unit-chain")
ROUND = 600
WINDOW = ROUND // 3
SLOT = ROUND // 6
G = 1_800_000_000_000
GENESIS_HASH = b"\x00" * 32
HEAD0 = ChainHead(0, GENESIS_HASH, G - 10)


def at(r: int, offset: int = 0) -> int:
    return G + r * ROUND + offset


def engine(index: int = 0, depth: int = 3, validators: Sequence[bytes] = VALS) -> PobEngine:
    return PobEngine(
        KEYS[index],
        CID,
        validators,
        round_ms=ROUND,
        genesis_time_ms=G,
        finality_depth=depth,
    )


def block(
    proposer: int, height: int, r: int, prev: bytes, benefit: int = 0, *, ts: int | None = None
) -> Block:
    header = BlockHeader(
        chain_id=CID,
        height=height,
        prev_hash=prev,
        timestamp_ms=at(r, 1) if ts is None else ts,
        proposer=VALS[proposer],
        round=r,
        benefit=benefit,
        tx_root=tx_root(()),
        schedule_root=schedule_root(()),
        state_root=sha256(b"state %d %d %d" % (proposer, height, r)),
    )
    return Block(header, (), ())


def message(b: Block) -> BlockMessage:
    index = VALS.index(b.header.proposer)
    return make_block_message(KEYS[index], CID, b)


def announce(
    signer: int,
    r: int,
    prev: bytes,
    b: Block | None = None,
    *,
    height: int = 1,
    benefit: int | None = None,
    final: int = 0,
    key: SigningKey | None = None,
) -> Announce:
    return make_announce(
        key or KEYS[signer],
        CID,
        height=b.height if b is not None else height,
        round_=r,
        prev_hash=prev,
        block_hash=b.hash() if b is not None else NO_BLOCK,
        benefit=(b.header.benefit if b is not None else 0) if benefit is None else benefit,
        final_height=final,
    )


def of(actions: Sequence[Action], kind: type[A]) -> list[A]:
    return [a for a in actions if isinstance(a, kind)]


def started(e: PobEngine, r: int = 0, offset: int = 1) -> RequestProposal:
    actions = e.start(HEAD0, {}, at(r, offset))
    (request,) = of(actions, RequestProposal)
    return request


def deliver_valid(e: PobEngine, b: Block, now: int, sender: int | None = None) -> list[Action]:
    """Deliver a block message and answer its validation as valid."""
    src = VALS[sender if sender is not None else VALS.index(b.header.proposer)]
    actions = e.on_message(src, message(b), now)
    out = list(actions)
    for v in of(actions, ValidateBlock):
        out.extend(e.on_block_validated(v.block.hash(), True, now))
    return out


def others_announce(e: PobEngine, r: int, now: int, signers: Sequence[int] = (1, 2)) -> None:
    """Announces of round ``r`` without a candidate (on the genesis head, so no vote) from
    ``signers``: f + 1 others announced in the round, so it ends on the clock."""
    for i in signers:
        e.on_message(VALS[i], announce(i, r, GENESIS_HASH), now)


def notarize(e: PobEngine, b: Block, now: int, voters: Sequence[int] = (1, 2, 3)) -> None:
    """Votes for ``b``: announces of the next round that name it."""
    for i in voters:
        e.on_message(VALS[i], announce(i, b.header.round + 1, b.hash(), height=b.height + 1), now)


# --- rounds, announces and the winner ---------------------------------------------------------


def test_a_round_starts_with_a_request_on_the_head() -> None:
    e = engine()
    actions = e.start(HEAD0, {}, at(0, 1))
    budget = round_budget(ROUND)
    assert actions == [
        RequestProposal(
            1,
            0,
            GENESIS_HASH,
            HEAD0.timestamp_ms + 1,
            max_txs=budget.max_txs,
            max_bytes=budget.max_bytes,
        ),
        SetTimer(at(1)),
    ]


def test_the_announce_leaves_after_its_guard_and_signs_the_candidate() -> None:
    e = engine()
    started(e)
    mine = block(0, 1, 0, GENESIS_HASH, benefit=7)
    actions = e.on_proposal(mine, at(0, 2))
    assert isinstance(actions[0], Persist)
    assert actions[0].key == GUARD_KEY
    assert decode_guard(actions[0].value) == GuardRecord(0, mine.hash(), 0)
    assert isinstance(actions[1], Broadcast)
    sent = actions[1].message
    assert isinstance(sent, Announce)
    assert (sent.round, sent.prev_hash, sent.block_hash, sent.benefit) == (
        0,
        GENESIS_HASH,
        mine.hash(),
        7,
    )
    assert of(actions, SetTimer) == [SetTimer(at(0, WINDOW))]  # when the winner sends


def test_only_the_winner_sends_its_block_after_the_window() -> None:
    e = engine()
    started(e)
    e.on_proposal(block(0, 1, 0, GENESIS_HASH, benefit=9), at(0, 2))
    e.on_message(VALS[1], announce(1, 0, GENESIS_HASH, block(1, 1, 0, GENESIS_HASH, 3)), at(0, 5))
    assert of(e.on_tick(at(0, WINDOW - 1)), Broadcast) == []
    (sent,) = of(e.on_tick(at(0, WINDOW)), Broadcast)
    assert isinstance(sent.message, BlockMessage)
    assert sent.message.block.header.benefit == 9


def test_a_loser_keeps_its_block() -> None:
    e = engine()
    started(e)
    e.on_proposal(block(0, 1, 0, GENESIS_HASH, benefit=2), at(0, 2))
    for i, benefit in ((1, 8), (2, 5), (3, 4)):
        b = block(i, 1, 0, GENESIS_HASH, benefit)
        e.on_message(VALS[i], announce(i, 0, GENESIS_HASH, b), at(0, 5))
    # Rank 3: it would send at window + 3 slots unless a better block is valid by then.
    deliver_valid(e, block(1, 1, 0, GENESIS_HASH, 8), at(0, WINDOW + 10))
    assert of(e.on_tick(at(0, WINDOW + 3 * SLOT)), Broadcast) == []


def test_a_lower_benefit_loses_even_with_the_best_tie_key() -> None:
    """A worse schedule (a valid block whose benefit is lower) never wins on the tie key: the
    proposer with the best ``sha256(parent + proposer)`` stays silent at the window while a
    better candidate on the same parent is announced, and keeps its block once that one is
    valid.  Benefits are on the chain's scale (``10**18 // (1 + step**2)``)."""
    best = min(range(4), key=lambda i: tie_key(GENESIS_HASH, VALS[i]))
    other = next(i for i in range(4) if i != best)
    e = engine(best)
    e.start(HEAD0, {}, at(0, 1))
    worse, honest = 10**18 // (1 + 4_000**2), 10**18 // (1 + 150**2)
    e.on_proposal(block(best, 1, 0, GENESIS_HASH, benefit=worse), at(0, 2))
    better = block(other, 1, 0, GENESIS_HASH, honest)
    e.on_message(VALS[other], announce(other, 0, GENESIS_HASH, better), at(0, 5))
    others_announce(e, 0, at(0, 6), [i for i in range(4) if i not in (best, other)][:1])
    assert of(e.on_tick(at(0, WINDOW)), Broadcast) == []
    deliver_valid(e, better, at(0, WINDOW + 10))
    assert of(e.on_tick(at(0, WINDOW + SLOT)), Broadcast) == []
    (request,) = of(e.on_tick(at(1)), RequestProposal)
    assert request.prev_hash == better.hash()  # and the vote goes to the better block


def test_summed_benefits_on_the_chains_scale_may_exceed_i64() -> None:
    """Branch weights are sums of header benefits of up to 10**18 each: a few perfectly flat
    steps pass I64's range, and the heavier branch must still win."""
    tree = BlockTree(3, GENESIS_HASH, 0, 0, None)
    flat = 10**18
    prev_a = prev_b = GENESIS_HASH
    for r in range(12):
        a = block(1, r + 1, r, prev_a, benefit=flat)
        b = block(2, r + 1, r, prev_b, benefit=flat - (1 if r == 11 else 0))
        for x in (a, b):
            tree.add(message(x), x.hash())
        prev_a, prev_b = a.hash(), b.hash()
    assert tree.weight_of(prev_a) == 12 * flat > 2**63
    assert tree.weight_of(prev_b) == 12 * flat - 1
    assert tree.blocks[prev_a].rank_key() < tree.blocks[prev_b].rank_key()


def test_equal_benefits_are_decided_by_sha256_of_parent_and_proposer() -> None:
    order = sorted(range(4), key=lambda i: tie_key(GENESIS_HASH, VALS[i]))
    assert tie_key(GENESIS_HASH, VALS[0]) == sha256(GENESIS_HASH + VALS[0])
    e = engine()
    started(e)
    e.on_proposal(block(0, 1, 0, GENESIS_HASH, benefit=4), at(0, 2))
    for i in (1, 2, 3):
        e.on_message(VALS[i], announce(i, 0, GENESIS_HASH, block(i, 1, 0, GENESIS_HASH, 4)), 0)
    rank = order.index(0)
    slot = at(0, WINDOW + rank * SLOT)
    if rank > 0:
        assert of(e.on_tick(slot - 1), Broadcast) == []
    assert len(of(e.on_tick(slot), Broadcast)) == 1


def test_a_withheld_winning_block_is_replaced_by_the_next_best() -> None:
    e = engine()
    started(e)
    e.on_proposal(block(0, 1, 0, GENESIS_HASH, benefit=5), at(0, 2))
    e.on_message(VALS[2], announce(2, 0, GENESIS_HASH, block(2, 1, 0, GENESIS_HASH, 9)), at(0, 3))
    assert of(e.on_tick(at(0, WINDOW)), Broadcast) == []  # validator 2 won ...
    (sent,) = of(e.on_tick(at(0, WINDOW + SLOT)), Broadcast)  # ... but sent nothing
    assert isinstance(sent.message, BlockMessage)


def test_no_candidate_is_still_a_signed_announce() -> None:
    e = engine()
    started(e)
    actions = e.on_proposal(None, at(0, 2))
    (sent,) = of(actions, Broadcast)
    assert isinstance(sent.message, Announce)
    assert not sent.message.has_block
    assert of(e.on_tick(at(0, WINDOW)), Broadcast) == []


# --- evidence -------------------------------------------------------------------------------------


def test_two_announces_for_one_round_are_evidence() -> None:
    e = engine()
    started(e)
    first = announce(1, 0, GENESIS_HASH, block(1, 1, 0, GENESIS_HASH, 1))
    second = announce(1, 0, GENESIS_HASH, block(1, 1, 0, GENESIS_HASH, 2))
    assert of(e.on_message(VALS[1], first, at(0, 3)), ReportEvidence) == []
    assert of(e.on_message(VALS[1], first, at(0, 3)), ReportEvidence) == []  # a duplicate
    (report,) = of(e.on_message(VALS[1], second, at(0, 4)), ReportEvidence)
    assert report == ReportEvidence(VALS[1], "equivocating-announce", (first, second))


def test_an_announced_benefit_that_the_block_does_not_carry_is_evidence() -> None:
    e = engine()
    started(e)
    b = block(1, 1, 0, GENESIS_HASH, benefit=3)
    liar = announce(1, 0, GENESIS_HASH, b, benefit=50)
    e.on_message(VALS[1], liar, at(0, 3))
    actions = e.on_message(VALS[1], message(b), at(0, WINDOW))
    (report,) = of(actions, ReportEvidence)
    assert report == ReportEvidence(VALS[1], "benefit_mismatch", (liar, message(b)))
    # The liar is out of the ranking: validator 0 (benefit 1) now wins the round.
    actions = e.on_proposal(block(0, 1, 0, GENESIS_HASH, benefit=1), at(0, WINDOW + 1))
    sent = [b.message for b in of(actions, Broadcast)]
    assert [type(m) for m in sent] == [Announce, BlockMessage]  # past the window: at once


def test_a_block_order_does_not_matter_for_the_mismatch() -> None:
    e = engine()
    started(e)
    b = block(1, 1, 0, GENESIS_HASH, benefit=3)
    e.on_message(VALS[1], message(b), at(0, 3))
    liar = announce(1, 0, GENESIS_HASH, b, benefit=4)
    (report,) = of(e.on_message(VALS[1], liar, at(0, 4)), ReportEvidence)
    assert report.kind == "benefit_mismatch"
    assert report.offender == VALS[1]


def test_a_recomputed_benefit_mismatch_is_evidence_and_drops_the_block() -> None:
    e = engine()
    started(e)
    b = block(2, 1, 0, GENESIS_HASH, benefit=90)
    _ = of(e.on_message(VALS[2], message(b), at(0, 3)), ValidateBlock)
    actions = e.on_block_validated(b.hash(), False, at(0, 4), reason="benefit_mismatch")
    (report,) = of(actions, ReportEvidence)
    assert report == ReportEvidence(VALS[2], "benefit_mismatch", (message(b),))
    assert of(e.on_message(VALS[2], message(b), at(0, 5)), ValidateBlock) == []
    # and an invalid block for another reason is dropped without evidence
    other = block(3, 1, 0, GENESIS_HASH, benefit=1)
    e.on_message(VALS[3], message(other), at(0, 6))
    assert of(e.on_block_validated(other.hash(), False, at(0, 7), "invalid"), ReportEvidence) == []


def test_two_blocks_of_one_proposer_in_one_round_are_evidence() -> None:
    e = engine()
    started(e)
    a = block(1, 1, 0, GENESIS_HASH, ts=at(0, 1))
    b = block(1, 1, 0, GENESIS_HASH, ts=at(0, 2))
    assert of(e.on_message(VALS[1], message(a), at(0, 3)), ReportEvidence) == []
    (report,) = of(e.on_message(VALS[1], message(b), at(0, 4)), ReportEvidence)
    assert report == ReportEvidence(VALS[1], "equivocating-block", (message(a), message(b)))


def test_messages_from_outsiders_or_with_bad_signatures_are_ignored() -> None:
    e = engine()
    started(e)
    outsider = det_key("pob-unit/outsider")
    fake = announce(1, 0, GENESIS_HASH, key=outsider)
    assert e.on_message(outsider.public_key, fake, at(0, 3)) == []
    good = announce(1, 0, GENESIS_HASH, block(1, 1, 0, GENESIS_HASH))
    bad_sig = VoteSignature(VALS[1], bytes(64))
    forged = Announce(good.height, 0, GENESIS_HASH, good.block_hash, 0, 0, bad_sig)
    assert e.on_message(VALS[1], forged, at(0, 3)) == []
    # the forged one was not stored: the real one is no equivocation
    assert of(e.on_message(VALS[1], good, at(0, 4)), ReportEvidence) == []


# --- blocks, parents, requests ---------------------------------------------------------------


def test_a_block_on_an_unknown_parent_is_asked_for_and_validated_after_it() -> None:
    e = engine()
    started(e, r=1)
    parent = block(1, 1, 0, GENESIS_HASH)
    child = block(2, 2, 1, parent.hash())
    actions = e.on_message(VALS[2], message(child), at(1, 3))
    assert of(actions, ValidateBlock) == []
    assert of(actions, Send) == [Send(VALS[2], BlockRequest(parent.hash()))]
    actions = e.on_message(VALS[2], message(parent), at(1, 4))
    assert of(actions, ValidateBlock) == [ValidateBlock(parent)]
    assert of(e.on_block_validated(parent.hash(), True, at(1, 5)), ValidateBlock) == [
        ValidateBlock(child)
    ]


def test_a_block_request_is_answered_with_the_block_and_its_votes() -> None:
    e = engine()
    started(e, r=1)
    b = block(1, 1, 0, GENESIS_HASH)
    deliver_valid(e, b, at(1, 2))
    notarize(e, b, at(1, 3))
    actions = e.on_message(VALS[3], BlockRequest(b.hash()), at(1, 4))
    sends = of(actions, Send)
    assert sends[0] == Send(VALS[3], message(b))
    votes = [s.message for s in sends[1:]]
    assert all(isinstance(v, Announce) for v in votes)
    assert sorted(v.signer for v in votes if isinstance(v, Announce)) == sorted(VALS[1:])
    assert e.on_message(VALS[3], BlockRequest(sha256(b"unknown")), at(1, 5)) == []


def test_an_announce_showing_a_higher_final_height_starts_a_sync() -> None:
    e = engine()
    started(e)
    actions = e.on_message(VALS[1], announce(1, 0, GENESIS_HASH, final=12), at(0, 3))
    assert SyncTo(12) in actions


# --- fork choice, votes, finality ------------------------------------------------------------


def test_the_vote_goes_to_the_heaviest_valid_block_of_the_last_round() -> None:
    e = engine()
    started(e)
    e.on_proposal(None, at(0, 2))
    light = block(1, 1, 0, GENESIS_HASH, benefit=5)
    heavy = block(2, 1, 0, GENESIS_HASH, benefit=9)
    e.on_message(VALS[1], announce(1, 0, GENESIS_HASH, light), at(0, 5))
    e.on_message(VALS[2], announce(2, 0, GENESIS_HASH, heavy), at(0, 5))
    deliver_valid(e, light, at(0, WINDOW))
    deliver_valid(e, heavy, at(0, WINDOW + 1))
    (request,) = of(e.on_tick(at(1)), RequestProposal)
    assert (request.height, request.round, request.prev_hash) == (2, 1, heavy.hash())
    assert request.min_timestamp_ms == heavy.header.timestamp_ms + 1


def test_summed_benefit_decides_between_branches_of_equal_length() -> None:
    tree = BlockTree(3, GENESIS_HASH, 0, 0, None)
    a1 = block(1, 1, 0, GENESIS_HASH, benefit=10)
    b1 = block(2, 1, 0, GENESIS_HASH, benefit=1)
    a2 = block(1, 2, 1, a1.hash(), benefit=1)
    b2 = block(2, 2, 1, b1.hash(), benefit=20)
    for b in (a1, b1, a2, b2):
        tree.add(message(b), b.hash())
    assert tree.weight_of(a2.hash()) == 11
    assert tree.weight_of(b2.hash()) == 21
    assert tree.blocks[b2.hash()].rank_key() < tree.blocks[a2.hash()].rank_key()


def test_without_a_votable_block_the_validator_builds_on_the_highest_notarized() -> None:
    e = engine()
    started(e)
    e.on_proposal(None, at(0, 2))
    a = block(1, 1, 0, GENESIS_HASH)
    e.on_message(VALS[1], announce(1, 0, GENESIS_HASH, a), at(0, 5))
    others_announce(e, 0, at(0, 5), (2,))
    deliver_valid(e, a, at(0, WINDOW))
    (request,) = of(e.on_tick(at(1)), RequestProposal)
    assert request.prev_hash == a.hash()  # a vote for a
    e.on_proposal(None, at(1, 2))
    notarize(e, a, at(1, 3))
    # Round 1 brought no block: round 2 builds on a (notarized), which is no vote.
    (request,) = of(e.on_tick(at(2)), RequestProposal)
    assert (request.prev_hash, request.height) == (a.hash(), 2)


def run_of_three(e: PobEngine, rounds: Sequence[int] = (0, 1, 2)) -> list[Block]:
    """Blocks at heights 1-3 in ``rounds``, each notarized by validators 1-3."""
    chain: list[Block] = []
    prev = GENESIS_HASH
    for height, r in enumerate(rounds, start=1):
        b = block(1 + height % 3, height, r, prev)
        deliver_valid(e, b, at(r, WINDOW))
        chain.append(b)
        prev = b.hash()
    return chain


def test_three_notarized_blocks_of_consecutive_rounds_finalise_the_middle_one() -> None:
    e = engine()
    started(e, r=4)
    chain = run_of_three(e)
    notarize(e, chain[0], at(4, 1))
    notarize(e, chain[1], at(4, 2))
    commits: list[Action] = []
    for i in (1, 2):
        commits += of(
            e.on_message(VALS[i], announce(i, 3, chain[2].hash(), height=4), at(4, 3)),
            CommitBlock,
        )
    assert commits == []  # two votes of four: a minority cannot finalise
    actions = e.on_message(VALS[3], announce(3, 3, chain[2].hash(), height=4), at(4, 4))
    assert of(actions, CommitBlock) == [
        CommitBlock(chain[0], message(chain[0]).certificate()),
        CommitBlock(chain[1], message(chain[1]).certificate()),
    ]
    cert = message(chain[0]).certificate()
    check_certificate(cert, chain[0], e.commit_rule(chain[0]), CID)
    e.on_block_committed(ChainHead(1, chain[0].hash(), chain[0].header.timestamp_ms), at(4, 5))
    e.on_block_committed(ChainHead(2, chain[1].hash(), chain[1].header.timestamp_ms), at(4, 5))
    assert e.status()["height"] == 2


def test_a_gap_between_rounds_is_no_finality() -> None:
    e = engine()
    started(e, r=5)
    chain = run_of_three(e, rounds=(0, 1, 3))
    for b in chain:
        notarize(e, b, at(5, 1))
    assert all(not of(e.on_tick(at(5, 2)), CommitBlock) for _ in range(1))
    assert e.status()["height"] == 0


def test_a_larger_depth_needs_a_longer_run() -> None:
    e = engine(depth=4)
    started(e, r=4)
    chain = run_of_three(e)
    committed: list[Action] = []
    for b in chain:
        before = len(committed)
        for i in (1, 2, 3):
            ann = announce(i, b.header.round + 1, b.hash(), height=b.height + 1)
            committed += of(e.on_message(VALS[i], ann, at(4, 1)), CommitBlock)
        assert len(committed) == before
    assert committed == []


def test_the_lock_forbids_votes_below_the_last_voted_parent() -> None:
    e = engine()
    started(e, r=1)
    e.on_proposal(None, at(1, 2))
    a = block(1, 1, 0, GENESIS_HASH)
    deliver_valid(e, a, at(1, 3))
    notarize(e, a, at(1, 4))
    b = block(2, 2, 1, a.hash())
    deliver_valid(e, b, at(1, WINDOW))
    (request,) = of(e.on_tick(at(2)), RequestProposal)
    assert request.prev_hash == b.hash()  # votes for b, whose parent a is at height 1
    actions = e.on_proposal(None, at(2, 1))
    (lock,) = [a for a in of(actions, Persist) if a.key == LOCK_KEY]
    assert decode_guard(of(actions, Persist)[-1].value).notarized_height == 1
    # A round-2 block on the genesis head (height 0 < lock 1) gets no vote in round 3.
    low = block(3, 1, 2, GENESIS_HASH)
    others_announce(e, 2, at(2, 5))
    deliver_valid(e, low, at(2, WINDOW))
    (request,) = of(e.on_tick(at(3)), RequestProposal)
    assert request.prev_hash != low.hash()
    assert isinstance(lock, Persist)


# --- rounds in step: catch-up and waiting for f + 1 others ----------------------------------


def test_f_plus_1_others_in_a_higher_round_bring_a_validator_there_at_once() -> None:
    """A validator whose clock is behind (or that was cut off) joins the highest round f + 1
    others announced in, without waiting for its clock, and counts that round's slots from
    then; one validator alone (perhaps Byzantine) moves nobody."""
    e = engine()
    started(e)
    e.on_proposal(None, at(0, 2))
    alone = e.on_message(VALS[1], announce(1, 5, GENESIS_HASH), at(0, 10))
    assert of(alone, RequestProposal) == []
    assert e.status()["round"] == 0
    jumped = e.on_message(VALS[2], announce(2, 6, GENESIS_HASH), at(0, 11))
    (request,) = of(jumped, RequestProposal)
    assert request.round == 5  # validator 1 is in round 5, validator 2 in round 6
    assert e.status()["round_jumps"] == 1
    e.on_proposal(block(0, 1, 5, GENESIS_HASH, benefit=1), at(0, 12))
    assert of(e.on_tick(at(0, 11 + WINDOW - 1)), Broadcast) == []
    (sent,) = of(e.on_tick(at(0, 11 + WINDOW)), Broadcast)
    assert isinstance(sent.message, BlockMessage)


def test_a_round_does_not_end_before_f_plus_1_others_announced_in_it() -> None:
    """A validator whose clock is ahead does not run ahead of the others: its round ends
    round_ms (less the announce window) after f + 1 others' announces of it arrived, not on
    its clock, and while it waits its own announce goes out again (it may have been lost)."""
    e = engine()
    started(e)
    (mine,) = [a.message for a in of(e.on_proposal(None, at(0, 2)), Broadcast)]
    waiting = e.on_tick(at(1))
    assert of(waiting, RequestProposal) == []
    assert [a.message for a in of(waiting, Broadcast)] == [mine]
    assert e.status()["rounds_waited"] == 1
    others_announce(e, 0, at(1, 250))
    assert of(e.on_tick(at(2)), RequestProposal) == []
    assert of(e.on_tick(at(1, 250 + ROUND - WINDOW - 1)), RequestProposal) == []
    (request,) = of(e.on_tick(at(1, 250 + ROUND - WINDOW)), RequestProposal)
    assert request.round == 1


def test_a_validator_already_in_a_later_round_counts_as_there() -> None:
    """Its announce of this round may have been lost (it sends only its current round's
    again): that it announced in a later round shows it went through this one."""
    e = engine()
    started(e)
    e.on_proposal(None, at(0, 2))
    others_announce(e, 0, at(0, 5), (2,))
    e.on_message(VALS[1], announce(1, 1, GENESIS_HASH), at(0, 6))
    (request,) = of(e.on_tick(at(1)), RequestProposal)
    assert request.round == 1
    assert e.status()["rounds_waited"] == 0


def test_clocks_that_agree_keep_the_clocks_rounds() -> None:
    """Announces that arrive within the announce window of the round's start change nothing:
    the next round starts on the clock."""
    e = engine()
    started(e)
    e.on_proposal(None, at(0, 2))
    others_announce(e, 0, at(0, WINDOW))
    assert e.on_tick(at(1, -1)) == [SetTimer(at(1))]
    (request,) = of(e.on_tick(at(1)), RequestProposal)
    assert request.round == 1


def test_a_round_that_ended_late_is_followed_by_the_next_not_by_the_clocks() -> None:
    """Rounds are never skipped by the clock (finality needs consecutive rounds): after a
    long wait the next round follows, and the rounds come back to the clock once the others'
    announces arrive within the window again."""
    e = engine()
    started(e)
    e.on_proposal(None, at(0, 2))
    e.on_tick(at(1))  # f + 1 others have not announced: round 0 waits
    others_announce(e, 0, at(3, 10))
    (request,) = of(e.on_tick(at(3, 10 + ROUND - WINDOW)), RequestProposal)
    assert request.round == 1


# --- restarts -------------------------------------------------------------------------------


def test_a_restart_never_announces_twice_in_a_round() -> None:
    e = engine()
    started(e, r=3)
    actions = e.on_proposal(block(0, 1, 3, GENESIS_HASH), at(3, 2))
    persisted = {a.key: a.value for a in of(actions, Persist)}
    again = engine()
    actions = again.start(HEAD0, persisted, at(3, 10))
    assert of(actions, RequestProposal) == []  # round 3 was announced before the crash
    assert again.on_proposal(block(0, 1, 3, GENESIS_HASH, ts=at(3, 9)), at(3, 11)) == []
    (request,) = of(again.on_tick(at(4)), RequestProposal)
    assert request.round == 4


def test_a_restart_restores_the_locked_chain_and_its_votes() -> None:
    e = engine()
    started(e, r=1)
    e.on_proposal(None, at(1, 2))
    a = block(1, 1, 0, GENESIS_HASH)
    deliver_valid(e, a, at(1, 3))
    notarize(e, a, at(1, 4))
    b = block(2, 2, 1, a.hash())
    deliver_valid(e, b, at(1, WINDOW))
    e.on_tick(at(2))
    actions = e.on_proposal(None, at(2, 1))
    persisted = {p.key: p.value for p in of(actions, Persist)}
    again = engine()
    actions = again.start(HEAD0, persisted, at(2, 50))
    assert of(actions, ValidateBlock) == [ValidateBlock(a)]
    again.on_block_validated(a.hash(), True, at(2, 51))
    # a is notarized again from the persisted votes: round 3 may build on it (or vote on it)
    deliver_valid(again, block(3, 2, 2, a.hash()), at(2, WINDOW))
    (request,) = of(again.on_tick(at(3)), RequestProposal)
    assert request.height == 3


def test_damaged_records_stop_the_engine() -> None:
    with pytest.raises(PersistedStateError):
        engine().start(HEAD0, {GUARD_KEY: b"\x01\x02"}, at(0))
    with pytest.raises(PersistedStateError):
        engine().start(HEAD0, {LOCK_KEY: GuardRecord(1, NO_BLOCK, 0).encode()}, at(0))


def test_a_lock_record_roundtrips() -> None:
    b = block(1, 1, 0, GENESIS_HASH)
    record = LockRecord((message(b),), (announce(2, 1, b.hash(), height=2),))
    assert decode_lock(record.encode()) == record


# --- decoding, config, status -----------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [b"", b"\x00", b"garbage" * 10, b"\x93\x01\x01\x02", BlockRequest(b"\x01" * 32).encode()[:-1]],
)
def test_garbage_does_not_decode(data: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_message(data)


def test_messages_roundtrip_and_shapes_are_checked() -> None:
    b = block(1, 1, 0, GENESIS_HASH, benefit=-4)
    for m in (message(b), announce(1, 0, GENESIS_HASH, b), BlockRequest(b.hash())):
        assert decode_message(m.encode()) == m
    wrong_signer = BlockMessage(b, message(block(2, 1, 0, GENESIS_HASH)).signature)
    with pytest.raises(FieldValueError):
        decode_message(wrong_signer.encode())
    no_block_benefit = Announce(
        1, 0, GENESIS_HASH, NO_BLOCK, 5, 0, announce(1, 0, b"\x01" * 32).signature
    )
    with pytest.raises(FieldValueError):
        decode_message(no_block_benefit.encode())
    with pytest.raises(DecodeError):
        decode_message(GuardRecord(1, NO_BLOCK, 0).encode())  # a record, not a message


def test_config_is_checked() -> None:
    with pytest.raises(PobConfigError):
        engine(validators=(VALS[0], VALS[0]))
    with pytest.raises(PobConfigError):
        PobEngine(KEYS[0], CID, VALS, round_ms=5, genesis_time_ms=G, finality_depth=3)
    with pytest.raises(PobConfigError):
        PobEngine(KEYS[0], CID, VALS, round_ms=600, genesis_time_ms=G, finality_depth=0)


def test_status_and_commit_rule() -> None:
    e = engine()
    started(e, r=2)
    assert e.status() == {
        "engine": "pob",
        "height": 0,
        "round": 2,
        "tip_height": 0,
        "round_jumps": 0,
        "rounds_waited": 0,
        "candidates_ahead": 0,
        "fill_txs": round_budget(ROUND).max_txs,
    }
    b = block(3, 1, 0, GENESIS_HASH)
    assert e.commit_rule(b) == CommitRule(frozenset({VALS[3]}), 1, VoteStep.COMMIT)
    assert e.on_pending_work(True, at(2, 1)) == []


def test_before_genesis_the_engine_waits_for_it() -> None:
    e = engine()
    assert e.start(HEAD0, {}, G - 500) == [SetTimer(G)]
    assert of(e.on_tick(G), RequestProposal) != []


def test_content_on_a_pending_branch_asks_for_blocks_even_when_empty() -> None:
    e = engine()
    started(e)
    e.on_proposal(None, at(0, 2))
    tx = sign_tx(KEYS[3], CID, 0, Transfer(address_of(VALS[2]), 5))
    empty = block(1, 1, 0, GENESIS_HASH)
    full = Block(
        dataclasses.replace(block(2, 1, 0, GENESIS_HASH).header, tx_root=tx_root((tx,))),
        (tx,),
        (),
    )
    others_announce(e, 0, at(0, 5))
    deliver_valid(e, empty, at(0, WINDOW))
    (request,) = of(e.on_tick(at(1)), RequestProposal)
    assert request.prev_hash == empty.hash()
    assert not request.allow_empty  # nothing pending needs finalising
    e2 = engine()
    started(e2)
    e2.on_proposal(None, at(0, 2))
    others_announce(e2, 0, at(0, 5))
    deliver_valid(e2, full, at(0, WINDOW))
    (request,) = of(e2.on_tick(at(1)), RequestProposal)
    assert request.prev_hash == full.hash()
    assert request.allow_empty  # a transaction waits on this branch for its finality


# --- blocks sized to the round, rounds that overlap (ADR 0045) -------------------------------


def test_the_budget_grows_with_the_round_within_the_protocols_limits() -> None:
    """A third of a round's worth of execution (6,000 tx/s) and link (4 MB/s)."""
    assert round_budget(1000) == BlockBudget(1998, 1_332_000)
    assert round_budget(600) == BlockBudget(1200, 800_000)
    assert round_budget(6).max_txs == MIN_BLOCK_TXS
    huge = round_budget(3_600_000)
    assert (huge.max_txs, huge.max_bytes) == (MAX_BLOCK_TXS, MAX_BLOCK_BYTES // 2)


def _with_txs(b: Block, count: int, signer: int = 3) -> Block:
    txs = tuple(
        sign_tx(KEYS[signer], CID, n, Transfer(address_of(VALS[2]), 1)) for n in range(count)
    )
    return Block(dataclasses.replace(b.header, tx_root=tx_root(txs)), txs, ())


def test_a_block_over_the_rounds_budget_is_refused_before_it_is_executed() -> None:
    limit = round_budget(ROUND).max_txs
    e = engine()
    started(e)
    over = _with_txs(block(0, 1, 0, GENESIS_HASH), limit + 1)
    (sent,) = [a.message for a in of(e.on_proposal(over, at(0, 2)), Broadcast)]
    assert isinstance(sent, Announce)
    assert sent.block_hash == NO_BLOCK  # the runtime's candidate over the budget is none
    big = _with_txs(block(1, 1, 0, GENESIS_HASH), limit + 1)
    fits = _with_txs(block(2, 1, 0, GENESIS_HASH), limit)
    assert of(e.on_message(VALS[1], message(big), at(0, WINDOW)), ValidateBlock) == []
    assert of(e.on_message(VALS[1], message(big), at(0, WINDOW)), ValidateBlock) == []
    (check,) = of(e.on_message(VALS[2], message(fits), at(0, WINDOW)), ValidateBlock)
    assert check.block == fits
    assert BlockBudget(limit, 10).admits(fits) is False  # bytes count as well


def test_the_next_rounds_candidate_is_built_ahead_and_announced_at_its_start() -> None:
    """Half a round in (after the winner's and the first fallback's slots), the candidate of
    the next round is built on the block this validator will vote for; nothing is signed
    then, and the next round announces it at its start without asking the runtime again."""
    e = engine()
    started(e)
    e.on_proposal(None, at(0, 2))
    others_announce(e, 0, at(0, 5))
    a = block(1, 1, 0, GENESIS_HASH)
    early = deliver_valid(e, a, at(0, WINDOW))
    assert of(early, RequestProposal) == []
    assert SetTimer(at(0, WINDOW + SLOT)) in early
    (ahead,) = of(e.on_tick(at(0, WINDOW + SLOT)), RequestProposal)
    assert (ahead.round, ahead.prev_hash, ahead.height) == (1, a.hash(), 2)
    assert ahead.max_txs == round_budget(ROUND).max_txs
    mine = block(0, 2, 1, a.hash(), benefit=4, ts=at(0, WINDOW + SLOT + 1))
    built = e.on_proposal(mine, at(0, WINDOW + SLOT + 1))
    assert of(built, Broadcast) == []
    assert of(built, Persist) == []
    actions = e.on_tick(at(1))
    assert of(actions, RequestProposal) == []
    (sent,) = [x.message for x in of(actions, Broadcast)]
    assert isinstance(sent, Announce)
    assert (sent.round, sent.prev_hash, sent.block_hash) == (1, a.hash(), mine.hash())
    assert e.status()["candidates_ahead"] == 1


def test_a_candidate_built_ahead_on_another_block_is_not_announced() -> None:
    """The vote of the next round goes to a better block that came after the candidate was
    built ahead: the round asks the runtime for a candidate on that block instead."""
    e = engine()
    started(e)
    e.on_proposal(None, at(0, 2))
    light = block(1, 1, 0, GENESIS_HASH, benefit=1)
    heavy = block(2, 1, 0, GENESIS_HASH, benefit=9)
    e.on_message(VALS[1], announce(1, 0, GENESIS_HASH, light), at(0, 5))
    e.on_message(VALS[2], announce(2, 0, GENESIS_HASH, heavy), at(0, 5))
    deliver_valid(e, light, at(0, WINDOW))
    (ahead,) = of(e.on_tick(at(0, WINDOW + SLOT)), RequestProposal)
    assert ahead.prev_hash == light.hash()
    e.on_proposal(block(0, 2, 1, light.hash(), ts=at(0, WINDOW + SLOT + 1)), at(0, WINDOW + SLOT))
    deliver_valid(e, heavy, at(0, WINDOW + 2 * SLOT))
    actions = e.on_tick(at(1))
    assert of(actions, Broadcast) == []
    (request,) = of(actions, RequestProposal)
    assert (request.round, request.prev_hash) == (1, heavy.hash())
    assert e.status()["candidates_ahead"] == 0


def test_candidates_fill_less_after_a_round_that_ran_long_and_grow_back() -> None:
    """A round that lasted longer than round_ms and a slot (a loaded validator: ADR 0033 let
    it grow) halves what this validator's candidates take; rounds on time raise it again by
    an eighth of the budget, never above it."""
    limit = round_budget(ROUND).max_txs
    e = engine()
    started(e)
    e.on_proposal(None, at(0, 2))
    e.on_tick(at(1))  # f + 1 others have not announced: round 0 waits
    others_announce(e, 0, at(3, 10))
    (request,) = of(e.on_tick(at(3, 10 + ROUND - WINDOW)), RequestProposal)
    assert (request.round, request.max_txs) == (1, limit // 2)
    e.on_proposal(None, at(3, 10 + ROUND - WINDOW))
    others_announce(e, 1, at(4, 1))
    (request,) = of(e.on_tick(at(4, 10 + ROUND - WINDOW)), RequestProposal)
    assert (request.round, request.max_txs) == (2, limit // 2 + limit // 8)
    assert e.status()["fill_txs"] == limit // 2 + limit // 8


def test_the_fill_never_drops_below_a_quarter_of_the_budget() -> None:
    limit = round_budget(ROUND).max_txs
    e = engine()
    started(e)
    entered = at(0, 1)
    for r in range(4):  # every round lasts three round_ms: its f + 1 others come late
        e.on_proposal(None, entered + 1)
        others_announce(e, r, entered + 3 * ROUND)
        entered += 3 * ROUND + ROUND - WINDOW
        (request,) = of(e.on_tick(entered), RequestProposal)
        assert request.round == r + 1
    assert request.max_txs == limit // 4


# --- validator-set changes (ADR 0044) ---------------------------------------------------------

JOINER = det_key("pob-unit/joiner")


def test_a_key_outside_the_set_follows_without_signing() -> None:
    """Validator 0 is not in the set (a joiner not admitted yet, or removed): it asks for no
    proposal and signs nothing, yet the blocks the others make final are final for it too.
    (Before ADR 0035/0044 such a key was a configuration error.)"""
    e = engine(validators=(*VALS[1:], JOINER.public_key))
    actions = e.start(HEAD0, {}, at(4, 1))
    assert of(actions, RequestProposal) == []
    assert of(actions, Broadcast) == []
    chain = run_of_three(e)
    for b in chain[:2]:
        notarize(e, b, at(4, 2))
    commits = []
    for i in (1, 2, 3):
        commits += of(
            e.on_message(VALS[i], announce(i, 3, chain[2].hash(), height=4), at(4, 3)),
            CommitBlock,
        )
    assert [c.block for c in commits] == chain[:2]


def test_votes_count_only_from_the_set_of_the_height_after_the_block() -> None:
    """A block's votes are the announces of the round that builds on it, so they count from
    the set of the height after it on its own branch: a removed validator's vote no longer
    counts, a joiner's does."""
    newcomer = (VALS[0], VALS[1], VALS[2], JOINER.public_key)
    tree = BlockTree(3, GENESIS_HASH, 0, 0, None)
    old = block(1, 1, 0, GENESIS_HASH)
    new = block(1, 1, 0, GENESIS_HASH, benefit=1)
    tree.add(message(old), old.hash(), frozenset(VALS))
    tree.add(message(new), new.hash(), frozenset(newcomer))
    for i in (1, 2, 3):
        tree.add_vote(announce(i, 1, old.hash(), height=2))
        tree.add_vote(announce(i, 1, new.hash(), height=2))
    assert tree.notarized(old.hash())
    assert not tree.notarized(new.hash())  # validator 3 left: two votes of the set count
    tree.add_vote(announce(0, 1, new.hash(), height=2, key=JOINER))
    assert tree.notarized(new.hash())


def test_a_validator_signs_only_in_rounds_whose_height_has_it_in_the_set() -> None:
    """The set of a round is the set of the height it builds, on the branch it builds on
    (the driver's ``validators_on``): validator 3, removed from height 2 on, announces for
    height 1 and stops after."""
    asked: list[tuple[bytes, int]] = []

    def validators_on(parent: bytes, height: int) -> tuple[bytes, ...]:
        asked.append((parent, height))
        return VALS if height < 2 else (*VALS[:3], JOINER.public_key)

    e = PobEngine(
        KEYS[3],
        CID,
        VALS,
        round_ms=ROUND,
        genesis_time_ms=G,
        finality_depth=3,
        validators_on=validators_on,
    )
    (request,) = of(e.start(HEAD0, {}, at(0, 1)), RequestProposal)
    assert (request.prev_hash, request.height) == (GENESIS_HASH, 1)
    assert (GENESIS_HASH, 1) in asked
    e.on_proposal(None, at(0, 2))
    a = block(1, 1, 0, GENESIS_HASH)
    e.on_message(VALS[1], announce(1, 0, GENESIS_HASH, a), at(0, 5))
    others_announce(e, 0, at(0, 5), (2,))
    deliver_valid(e, a, at(0, WINDOW))
    assert (a.hash(), 2) in asked  # who may vote for a
    actions = e.on_tick(at(1))
    assert of(actions, RequestProposal) == []  # round 1 builds height 2: not in its set
    assert e.status()["round"] == 1
