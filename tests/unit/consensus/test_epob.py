"""The ePoB engine's rules, one at a time, with the other validators played by hand.

Why: the protocol's safety rests on a few rules (vote for the best *valid* proposal, lock on a
polka, prevote only the lock unless a later polka frees it, never sign twice across restarts)
and each is easiest to check in isolation, in exactly the situation it is about.  The engine
runs in whole clusters, with faults and Byzantine validators, in tests/sim/test_epob_sim.py.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from functools import cache
from typing import TypeVar

import pytest

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
from gridchain.consensus.epob import (
    Decision,
    DoubleSignError,
    EpobConfigError,
    EpobEngine,
    Precommit,
    Prevote,
    Proposal,
    SigningGuard,
    decode_message,
    quorum_size,
    tie_break,
)
from gridchain.consensus.epob.guard import (
    LAST_COMMIT_KEY,
    LOCK_KEY,
    PREVOTE_KEY,
    PROPOSAL_KEY,
    Kind,
)
from gridchain.consensus.epob.messages import (
    make_precommit,
    make_prevote,
    make_proposal,
)
from gridchain.consensus.kernel.messages import sign_payload
from gridchain.protocol.block import Block, Certificate, Vote, VoteStep
from gridchain.protocol.crypto import SigningKey, sha256
from gridchain.protocol.encoding import Record
from gridchain.protocol.errors import DecodeError
from tests.helpers import det_key, make_block

ROUND = 1_000
INTERVAL = 100
T0 = 1_800_000_000_000
CID = sha256(b"epob-unit-chain")
H0 = sha256(b"epob-unit-genesis")
HEAD = ChainHead(0, H0, T0 - 5_000)
PREPARE = int(VoteStep.PREPARE)
COMMIT = int(VoteStep.COMMIT)
A = TypeVar("A")


@cache
def keys(n: int = 4) -> list[SigningKey]:
    return [det_key(f"epob-unit/{i}") for i in range(n)]


def vals(n: int = 4) -> tuple[bytes, ...]:
    return tuple(k.public_key for k in keys(n))


def engine(me: int = 0, n: int = 4, quorum: str = "bft") -> EpobEngine:
    assert quorum in ("bft", "majority")
    return EpobEngine(
        keys(n)[me],
        CID,
        vals(n),
        round_ms=ROUND,
        block_interval_ms=INTERVAL,
        quorum="bft" if quorum == "bft" else "majority",
    )


def block(
    proposer: int, *, round_: int = 0, benefit: int = 0, height: int = 1, prev: bytes = H0
) -> Block:
    b = make_block(
        CID,
        height,
        prev,
        proposer=keys()[proposer].public_key,
        round_=round_,
        timestamp_ms=T0 + 10 * height + proposer,
        state_root=sha256(b"root %d" % proposer),
    )
    return dataclasses.replace(b, header=dataclasses.replace(b.header, benefit=benefit))


def of(actions: Sequence[Action], kind: type[A]) -> list[A]:
    return [a for a in actions if isinstance(a, kind)]


def sent(actions: Sequence[Action], kind: type[A]) -> list[A]:
    """The messages of type ``kind`` broadcast in ``actions``."""
    return [a.message for a in of(actions, Broadcast) if isinstance(a.message, kind)]


def persisted(actions: Sequence[Action]) -> dict[bytes, bytes]:
    return {a.key: a.value for a in of(actions, Persist)}


def started(e: EpobEngine, now: int = T0) -> list[Action]:
    """Start at HEAD with pending work and run to the RequestProposal of round 0."""
    out = e.start(HEAD, {}, now)
    out += e.on_pending_work(True, now)
    out += e.on_tick(now + INTERVAL)
    return out


def proposal(i: int, b: Block, round_: int = 0, polka: Certificate | None = None) -> Proposal:
    return make_proposal(keys()[i], CID, round_, b, polka)


def prevote(i: int, b: Block | bytes, round_: int = 0, n: int = 4) -> Prevote:
    h = b if isinstance(b, bytes) else b.hash()
    return make_prevote(keys(n)[i], CID, Vote(1, round_, h, PREPARE))


def precommit(i: int, b: Block, round_: int = 0, n: int = 4) -> Precommit:
    return make_precommit(keys(n)[i], CID, Vote(1, round_, b.hash(), COMMIT))


def polka(b: Block, round_: int, signers: Sequence[int]) -> Certificate:
    vote = Vote(b.height, round_, b.hash(), PREPARE)
    return Certificate(vote, tuple(sign_payload(keys()[i], CID, vote) for i in signers))


def deliver(e: EpobEngine, message: Record, now: int = T0 + INTERVAL) -> list[Action]:
    return e.on_message(b"peer", message, now)


def to_prevote(
    e: EpobEngine,
    blocks: dict[int, Block],
    valid: dict[int, bool] | None = None,
    reasons: dict[int, str] | None = None,
    now: int = T0 + INTERVAL,
) -> list[Action]:
    """Play round 0: ``blocks[0]`` is the engine's own, the others arrive and get validated."""
    out = started(e, T0)
    out += e.on_proposal(blocks[0], now)
    for i, b in blocks.items():
        if i == 0:
            continue
        got = deliver(e, proposal(i, b), now)
        assert ValidateBlock(b) in got
        out += got
    for i, b in blocks.items():
        if i == 0:
            continue
        ok = True if valid is None else valid.get(i, True)
        reason = "" if reasons is None else reasons.get(i, "")
        out += e.on_block_validated(b.hash(), ok, now, reason)
    return out


# --- configuration -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "bft", "majority"), [(1, 1, 1), (2, 2, 2), (4, 3, 3), (5, 4, 3), (7, 5, 4), (10, 7, 6)]
)
def test_quorum_sizes_for_both_options(n: int, bft: int, majority: int) -> None:
    assert quorum_size(n, "bft") == bft
    assert quorum_size(n, "majority") == majority
    e = engine(0, n, "majority")
    assert e.q == majority
    rule = e.commit_rule(block(0))
    assert rule.signers == frozenset(vals(n))
    assert rule.quorum == majority
    assert rule.step == VoteStep.COMMIT  # precommits; a prevote quorum certifies nothing
    assert engine(0, n).commit_rule(block(0)).quorum == bft


def test_bad_configuration_is_refused() -> None:
    # (a key outside the set is no configuration error since ADR 0035: it follows without
    # signing, tests/unit/consensus/test_validator_changes.py)
    with pytest.raises(EpobConfigError):
        EpobEngine(keys()[0], CID, (), round_ms=ROUND, block_interval_ms=INTERVAL)
    with pytest.raises(EpobConfigError):
        EpobEngine(keys()[0], CID, vals(), round_ms=0, block_interval_ms=INTERVAL)


def test_status_names_the_engine_height_and_round() -> None:
    e = engine()
    e.start(HEAD, {}, T0)
    assert e.status() == {"engine": "epob", "height": 0, "round": 0}


# --- proposing and choosing -------------------------------------------------------------------


def test_a_height_starts_after_the_block_interval_once_work_is_pending() -> None:
    e = engine()
    assert e.start(HEAD, {}, T0) == []
    assert e.on_pending_work(True, T0) == [SetTimer(T0 + INTERVAL)]
    assert of(e.on_tick(T0 + INTERVAL - 1), RequestProposal) == []
    out = e.on_tick(T0 + INTERVAL)
    assert of(out, RequestProposal) == [RequestProposal(1, 0, H0, HEAD.timestamp_ms + 1)]
    mine = block(0)
    out = e.on_proposal(mine, T0 + INTERVAL)
    # The proposal's record is persisted before the proposal leaves.
    assert [type(a) for a in out[:2]] == [Persist, Broadcast]
    assert of(out, Persist)[0].key == PROPOSAL_KEY
    assert sent(out, Proposal)[0].block == mine


def test_an_idle_validator_joins_when_a_proposal_arrives() -> None:
    e = engine()
    e.start(HEAD, {}, T0)
    assert e.status()["round"] == 0
    assert not e.active
    b = block(1)
    out = deliver(e, proposal(1, b))
    assert of(out, RequestProposal) == [RequestProposal(1, 0, H0, HEAD.timestamp_ms + 1)]
    assert ValidateBlock(b) in out  # and it proposes too (the runtime may answer None)


def test_it_prevotes_the_valid_proposal_with_the_highest_benefit() -> None:
    e = engine()
    blocks = {0: block(0, benefit=5), 1: block(1, benefit=9), 2: block(2, benefit=7)}
    out = to_prevote(e, blocks)
    assert not sent(out, Prevote)  # one validator's proposal is missing: the window is open
    out = deliver(e, proposal(3, block(3, benefit=1)))
    out += e.on_block_validated(block(3, benefit=1).hash(), True, T0 + INTERVAL)
    votes = sent(out, Prevote)
    assert [v.vote.block_hash for v in votes] == [blocks[1].hash()]
    assert [type(a) for a in out if isinstance(a, Persist | Broadcast)][-2:] == [Persist, Broadcast]
    assert persisted(out)[PREVOTE_KEY] == votes[0].vote.encode()


def test_the_window_closes_on_time_when_a_proposal_is_missing() -> None:
    e = engine()
    blocks = {0: block(0, benefit=5), 1: block(1, benefit=9)}
    out = to_prevote(e, blocks)
    assert not sent(out, Prevote)
    out = e.on_tick(T0 + INTERVAL + ROUND * 2 // 5)
    assert [v.vote.block_hash for v in sent(out, Prevote)] == [blocks[1].hash()]


def test_equal_benefits_go_to_the_lowest_hash_of_parent_and_proposer() -> None:
    e = engine()
    blocks = {i: block(i, benefit=4) for i in range(4)}
    out = to_prevote(e, blocks)
    best = min(blocks.values(), key=lambda b: (tie_break(b), b.hash()))
    assert [v.vote.block_hash for v in sent(out, Prevote)] == [best.hash()]
    assert tie_break(best) == sha256(H0 + best.header.proposer)


def test_an_inflated_benefit_is_never_chosen_and_is_reported() -> None:
    e = engine()
    blocks = {0: block(0, benefit=5), 1: block(1, benefit=1_000), 2: block(2), 3: block(3)}
    out = to_prevote(e, blocks, valid={1: False}, reasons={1: "benefit_mismatch"})
    evidence = of(out, ReportEvidence)
    assert [(r.offender, r.kind) for r in evidence] == [(keys()[1].public_key, "benefit_mismatch")]
    assert evidence[0].evidence == (proposal(1, blocks[1]),)
    assert [v.vote.block_hash for v in sent(out, Prevote)] == [blocks[0].hash()]


def test_other_refusals_are_not_benefit_evidence() -> None:
    e = engine()
    blocks = {0: block(0), 1: block(1, benefit=9), 2: block(2), 3: block(3)}
    out = to_prevote(e, blocks, valid={1: False}, reasons={1: "block_rejected"})
    assert of(out, ReportEvidence) == []


def test_two_proposals_in_one_round_are_evidence() -> None:
    e = engine()
    started(e)
    first, second = block(1), block(1, benefit=3)
    deliver(e, proposal(1, first))
    out = deliver(e, proposal(1, second))
    assert [r.kind for r in of(out, ReportEvidence)] == ["equivocating-proposal"]


# --- locking and deciding -------------------------------------------------------------------


def locked_on(e: EpobEngine) -> Block:
    """Play round 0 to a polka for block(1) and return it (the engine precommits it)."""
    blocks = {0: block(0), 1: block(1, benefit=9), 2: block(2), 3: block(3)}
    to_prevote(e, blocks)
    x = blocks[1]
    deliver(e, prevote(1, x))
    out = deliver(e, prevote(2, x))
    assert [type(a) for a in out if isinstance(a, Persist | Broadcast)] == [Persist, Broadcast]
    assert of(out, Persist)[0].key == LOCK_KEY
    assert [p.vote for p in sent(out, Precommit)] == [Vote(1, 0, x.hash(), COMMIT)]
    assert e.locked == (0, x.hash())
    return x


def test_a_polka_locks_and_q_precommits_commit_with_a_certificate() -> None:
    e = engine()
    x = locked_on(e)
    assert of(deliver(e, precommit(1, x)), CommitBlock) == []
    out = deliver(e, precommit(3, x))
    commits = of(out, CommitBlock)
    assert [c.block for c in commits] == [x]
    cert = commits[0].certificate
    assert cert.vote == Vote(1, 0, x.hash(), COMMIT)
    cert.verify(CID, vals(), 3)
    assert out.index(Persist(LAST_COMMIT_KEY, cert.encode())) < out.index(commits[0])


def test_votes_that_fall_short_change_the_round_and_rounds_grow() -> None:
    e = engine()
    to_prevote(e, {i: block(i) for i in range(4)})
    start = T0 + INTERVAL
    out = e.on_tick(start + ROUND)
    assert e.round == 1
    assert of(out, RequestProposal) == [RequestProposal(1, 1, H0, HEAD.timestamp_ms + 1)]
    assert of(e.on_tick(start + ROUND + ROUND * 3 // 2 - 1), RequestProposal) == []
    assert e.round == 1
    e.on_tick(start + ROUND + ROUND * 3 // 2)
    assert e.round == 2


def test_a_withheld_winner_costs_a_round_and_the_next_one_decides() -> None:
    """Validators that never received the winner voted for others; the round ends unfinished."""
    e = engine()
    blocks = {0: block(0, benefit=1), 1: block(1, benefit=2), 2: block(2, benefit=3)}
    out = to_prevote(e, blocks)
    out += e.on_tick(T0 + INTERVAL + ROUND * 2 // 5)  # validator 3's winner never came
    assert [v.vote.block_hash for v in sent(out, Prevote)] == [blocks[2].hash()]
    deliver(e, prevote(3, sha256(b"the withheld winner")))
    e.on_tick(T0 + INTERVAL + ROUND)
    assert e.round == 1
    assert e.locked is None


def test_a_locked_validator_reproposes_and_prevotes_only_its_lock() -> None:
    e = engine()
    x = locked_on(e)
    out = e.on_tick(T0 + INTERVAL + ROUND)
    assert e.round == 1
    assert of(out, RequestProposal) == []
    reproposal = sent(out, Proposal)
    assert [p.block for p in reproposal] == [x]
    assert reproposal[0].polka == polka(x, 0, [0, 1, 2])
    leader = vals().index(e.leader(1, 1))
    better = block(leader, round_=1, benefit=100)
    deliver(e, proposal(leader, better, round_=1))
    out = e.on_block_validated(better.hash(), True, T0 + INTERVAL + ROUND)
    assert [v.vote.block_hash for v in sent(out, Prevote)] == [x.hash()]


def test_a_later_polka_frees_a_locked_validator() -> None:
    e = engine()
    x = locked_on(e)
    now = T0 + INTERVAL + ROUND
    e.on_tick(now)  # round 1
    now += ROUND * 3 // 2
    e.on_tick(now)  # round 2
    assert e.round == 2
    y = block(2, round_=1, benefit=1)
    out = deliver(e, proposal(3, y, round_=2, polka=polka(y, 1, [1, 2, 3])), now)
    assert ValidateBlock(y) in out
    out = e.on_block_validated(y.hash(), True, now)
    out += e.on_tick(now + ROUND * 4 // 5)
    assert [v.vote.block_hash for v in sent(out, Prevote)] == [y.hash()]
    assert x.hash() != y.hash()


def test_an_earlier_polka_does_not_free_a_lock() -> None:
    e = engine()
    x = locked_on(e)
    now = T0 + INTERVAL + ROUND
    e.on_tick(now)  # round 1
    now += ROUND * 3 // 2
    e.on_tick(now)  # round 2
    y = block(2, benefit=1)  # a polka for y in round 0 is impossible with honest validators,
    out = deliver(e, proposal(3, y, round_=2, polka=polka(y, 0, [1, 2, 3])), now)  # but: lies
    e.on_block_validated(y.hash(), True, now)
    out = e.on_tick(now + ROUND * 4 // 5)
    assert [v.vote.block_hash for v in sent(out, Prevote)] == [x.hash()]


def test_an_unlocked_validator_prefers_the_highest_round_polka_over_benefit() -> None:
    e = engine()
    to_prevote(e, {i: block(i) for i in range(4)})
    now = T0 + INTERVAL + ROUND
    e.on_tick(now)
    now += ROUND * 3 // 2
    e.on_tick(now)  # round 2
    y = block(3, round_=1, benefit=1)
    deliver(e, proposal(3, y, round_=2, polka=polka(y, 1, [1, 2, 3])), now)
    e.on_block_validated(y.hash(), True, now)
    rich = block(1, round_=2, benefit=10_000)
    deliver(e, proposal(1, rich, round_=2), now)
    out = e.on_block_validated(rich.hash(), True, now)
    out += e.on_tick(now + ROUND * 4 // 5)
    assert [v.vote.block_hash for v in sent(out, Prevote)] == [y.hash()]


# --- restarts -------------------------------------------------------------------------------


def test_a_restart_never_signs_a_second_prevote_in_a_round() -> None:
    e = engine()
    blocks = {i: block(i, benefit=i) for i in range(4)}
    records = persisted(to_prevote(e, blocks))
    assert {PREVOTE_KEY, PROPOSAL_KEY} <= records.keys()
    again = engine()
    out = again.start(HEAD, records, T0 + 500)
    assert (again.round, again.active) == (0, True)
    assert of(out, RequestProposal) == []  # it proposed in round 0 already
    better = block(1, benefit=50)
    deliver(again, proposal(2, better), T0 + 500)
    out = again.on_block_validated(better.hash(), True, T0 + 500)
    out += again.on_tick(T0 + 500 + ROUND)  # the window closes, then the round ends
    assert all(p.vote.round > 0 for p in sent(out, Prevote))


def test_a_restart_keeps_the_lock_and_reproposes_it() -> None:
    x = block(1, benefit=9)
    records: dict[bytes, bytes] = {}
    f = engine()
    blocks = {0: block(0), 1: block(1, benefit=9), 2: block(2), 3: block(3)}
    records.update(persisted(to_prevote(f, blocks)))
    deliver(f, prevote(1, x))
    records.update(persisted(deliver(f, prevote(2, x))))
    assert LOCK_KEY in records
    again = engine()
    again.start(HEAD, records, T0 + 500)
    assert again.locked == (0, x.hash())
    out = again.on_tick(T0 + 500 + ROUND)
    assert again.round == 1
    assert [p.block for p in sent(out, Proposal)] == [x]


def test_the_signing_guard_refuses_conflicts_and_going_back() -> None:
    guard = SigningGuard[Kind]()
    guard.record("prevote", 1, 2, b"a" * 32)
    guard.record("prevote", 1, 2, b"a" * 32)  # the same vote again is fine
    with pytest.raises(DoubleSignError):
        guard.record("prevote", 1, 2, b"b" * 32)
    with pytest.raises(DoubleSignError):
        guard.record("prevote", 1, 1, b"a" * 32)
    assert guard.permits("precommit", 1, 2, b"b" * 32)
    assert guard.permits("prevote", 2, 0, b"b" * 32)


# --- catching up and strangers ------------------------------------------------------------


def test_validators_ahead_make_it_sync() -> None:
    e = engine()
    e.start(HEAD, {}, T0)
    far = block(1, height=5, prev=sha256(b"h4"))
    out = deliver(e, make_proposal(keys()[1], CID, 0, far))
    assert of(out, SyncTo) == []  # one validator could lie
    out = deliver(e, make_prevote(keys()[2], CID, Vote(5, 0, far.hash(), PREPARE)))
    assert of(out, SyncTo) == [SyncTo(4)]


def test_a_decision_commits_a_known_block_and_syncs_to_a_higher_one() -> None:
    e = engine()
    blocks = {i: block(i) for i in range(4)}
    to_prevote(e, blocks)
    x = blocks[2]
    vote = Vote(1, 0, x.hash(), COMMIT)
    cert = Certificate(vote, tuple(sign_payload(keys()[i], CID, vote) for i in (1, 2, 3)))
    out = deliver(e, Decision(cert))
    assert [c.block for c in of(out, CommitBlock)] == [x]
    short = Certificate(vote, tuple(sign_payload(keys()[i], CID, vote) for i in (1, 2)))
    assert of(deliver(engine(), Decision(short)), CommitBlock) == []
    later = Vote(7, 0, sha256(b"b7"), COMMIT)
    cert7 = Certificate(later, tuple(sign_payload(keys()[i], CID, later) for i in (0, 1, 3)))
    other = engine(1)
    other.start(HEAD, {}, T0)
    assert of(deliver(other, Decision(cert7)), SyncTo) == [SyncTo(7)]


def test_a_validator_behind_gets_the_certificate() -> None:
    e = engine()
    x = locked_on(e)
    deliver(e, precommit(1, x))
    cert = of(deliver(e, precommit(3, x)), CommitBlock)[0].certificate
    e.on_block_committed(ChainHead(1, x.hash(), x.header.timestamp_ms), T0 + 2 * INTERVAL)
    out = deliver(e, prevote(3, x), T0 + 3 * INTERVAL)
    assert of(out, Send) == [Send(keys()[3].public_key, Decision(cert))]
    assert of(deliver(e, prevote(3, x), T0 + 3 * INTERVAL), Send) == []  # not again at once


def test_conflicting_votes_are_evidence_and_outsiders_are_ignored() -> None:
    e = engine()
    started(e)
    deliver(e, prevote(1, sha256(b"one")))
    out = deliver(e, prevote(1, sha256(b"two")))
    assert [r.kind for r in of(out, ReportEvidence)] == ["conflicting-prevote"]
    stranger = det_key("stranger")
    vote = Vote(1, 0, sha256(b"x"), COMMIT)
    assert deliver(e, make_precommit(stranger, CID, vote)) == []


def test_a_majority_engine_commits_with_n_over_2_plus_1() -> None:
    n = 5
    e = EpobEngine(
        keys(n)[0], CID, vals(n), round_ms=ROUND, block_interval_ms=INTERVAL, quorum="majority"
    )
    started(e)
    x = block(0)
    e.on_proposal(x, T0 + INTERVAL)
    e.on_tick(T0 + INTERVAL + ROUND * 2 // 5)  # prevotes its own block
    deliver(e, prevote(1, x, n=n))
    out = deliver(e, prevote(2, x, n=n))
    assert sent(out, Precommit)
    deliver(e, precommit(1, x, n=n))
    out = deliver(e, precommit(2, x, n=n))
    assert len(of(out, CommitBlock)) == 1
    assert len(of(out, CommitBlock)[0].certificate.signatures) == 3


# --- decoding -------------------------------------------------------------------------------


def test_messages_round_trip_and_garbage_is_refused() -> None:
    x = block(1)
    for message in (
        proposal(1, x),
        prevote(2, x),
        precommit(3, x),
        proposal(2, x, round_=3, polka=polka(x, 1, [0, 1, 2])),
    ):
        assert decode_message(message.encode()) == message
    for garbage in (b"", b"\x00", b"garbage", Vote(1, 0, x.hash(), PREPARE).encode()):
        with pytest.raises(DecodeError):
            decode_message(garbage)
    wrong_step = Prevote(Vote(1, 0, x.hash(), COMMIT), prevote(1, x).signature)
    not_mine = make_proposal(keys()[2], CID, 0, x)  # a fresh block names its signer
    late_polka = proposal(2, x, round_=1, polka=polka(x, 1, [0, 1, 2]))
    other_round = proposal(1, block(1, round_=2), round_=1)
    for bad in (wrong_step, not_mine, late_polka, other_round):
        with pytest.raises(DecodeError):
            decode_message(bad.encode())


def test_f_plus_1_validators_in_a_higher_round_pull_it_there() -> None:
    e = engine()
    started(e)
    deliver(e, prevote(1, sha256(b"r5"), round_=5))
    assert e.round == 0  # one validator may be lying about its round
    deliver(e, prevote(2, sha256(b"r3"), round_=3))
    assert e.round == 3  # two (f + 1) are ahead: join the lower of their rounds


def test_a_decision_must_carry_commit_votes() -> None:
    x = block(1)
    vote = Vote(1, 0, x.hash(), PREPARE)
    cert = Certificate(vote, tuple(sign_payload(keys()[i], CID, vote) for i in (0, 1, 2)))
    with pytest.raises(DecodeError):
        decode_message(Decision(cert).encode())


def test_a_certified_polka_counts_even_with_a_double_voter_in_it() -> None:
    """Validator 3 prevoted two blocks in round 1; this engine heard the other vote first."""
    e = engine()
    to_prevote(e, {i: block(i) for i in range(4)})
    now = T0 + INTERVAL + ROUND
    e.on_tick(now)  # round 1
    deliver(e, prevote(3, sha256(b"something else"), round_=1), now)
    now += ROUND * 3 // 2
    e.on_tick(now)  # round 2
    y = block(2, round_=1)
    out = deliver(e, proposal(1, y, round_=2, polka=polka(y, 1, [1, 2, 3])), now)
    assert [(r.offender, r.kind) for r in of(out, ReportEvidence)] == [
        (keys()[3].public_key, "conflicting-prevote")
    ]
    out = e.on_block_validated(y.hash(), True, now)
    out += e.on_tick(now + ROUND * 4 // 5)
    assert [v.vote.block_hash for v in sent(out, Prevote)] == [y.hash()]


def test_validators_far_ahead_in_rounds_still_pull_it_up() -> None:
    e = engine()
    started(e)
    deliver(e, prevote(1, sha256(b"r40"), round_=40))
    deliver(e, precommit(2, block(2), round_=45))
    assert e.round == 40


def test_a_single_validator_decides_its_own_block_at_once() -> None:
    e = EpobEngine(keys(1)[0], CID, vals(1), round_ms=ROUND, block_interval_ms=INTERVAL)
    started(e)
    out = e.on_proposal(block(0), T0 + INTERVAL)
    kinds = [type(a).__name__ for a in out if not isinstance(a, SetTimer)]
    assert kinds == ["Persist", "Broadcast"] * 3 + ["Persist", "CommitBlock"]
    of(out, CommitBlock)[0].certificate.verify(CID, vals(1), 1)


def test_a_locked_validator_offers_a_later_polka_instead_of_its_lock() -> None:
    e = engine()
    locked_on(e)
    now = T0 + INTERVAL + ROUND
    e.on_tick(now)  # round 1
    now += ROUND * 3 // 2
    e.on_tick(now)  # round 2
    leader = vals().index(e.leader(1, 1))
    y = block(leader, round_=1)
    deliver(e, proposal(leader, y, round_=1), now)
    e.on_block_validated(y.hash(), True, now)
    for i in (1, 2, 3):
        deliver(e, prevote(i, y, round_=1), now)
    out = e.on_tick(now + ROUND * 2)  # round 3
    assert e.round == 3
    offered = sent(out, Proposal)
    assert [(p.block, p.polka) for p in offered] == [(y, polka(y, 1, [1, 2, 3]))]
