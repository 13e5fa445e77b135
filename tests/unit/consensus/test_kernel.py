"""The consensus kernel: what every engine shares (consensus/kernel/, docs/adr/0016).

The engines' own tests (test_pbft.py, test_epob.py, test_pob.py, tests/unit/test_solo.py) show
each engine using these pieces; here each piece is held to its contract on its own.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from gridchain.consensus import epob, pbft, pob, solo
from gridchain.consensus.engine import Action, SetTimer
from gridchain.consensus.epob.messages import decode_message as decode_epob
from gridchain.consensus.kernel.alarm import Alarm
from gridchain.consensus.kernel.claims import HeadClaims
from gridchain.consensus.kernel.guard import (
    DoubleSignError,
    PersistedStateError,
    SigningGuard,
    read_record,
)
from gridchain.consensus.kernel.messages import Decision, check_decision, sign_payload
from gridchain.consensus.kernel.tally import Tally
from gridchain.consensus.kernel.validators import (
    ConsensusConfigError,
    ValidatorSet,
    quorum_size,
)
from gridchain.consensus.kernel.verify import (
    BlockHashes,
    RememberedVerify,
    SignatureCache,
    certificate_signed,
)
from gridchain.consensus.pbft.messages import decode_message as decode_pbft
from gridchain.protocol.block import Certificate, Vote, VoteSignature, VoteStep
from gridchain.protocol.crypto import Domain, SigningKey, sha256, verify
from gridchain.protocol.encoding import decode
from gridchain.protocol.errors import (
    DecodeError,
    FieldValueError,
    GridchainError,
    InvariantViolation,
    SignatureError,
)
from tests.helpers import det_key, make_block

CID = sha256(b"kernel-unit-chain")
A, B = b"a" * 32, b"b" * 32


def keys(n: int = 4) -> list[SigningKey]:
    return [det_key(f"kernel validator {i}") for i in range(n)]


def vals(n: int = 4) -> ValidatorSet:
    return ValidatorSet([k.public_key for k in keys(n)])


def commit_vote(height: int = 3, round_: int = 0, block_hash: bytes = A) -> Vote:
    return Vote(height, round_, block_hash, int(VoteStep.COMMIT))


def signed(i: int, vote: Vote) -> VoteSignature:
    return sign_payload(keys()[i], CID, vote)


def certificate(vote: Vote, signers: Sequence[int]) -> Certificate:
    return Certificate(vote, tuple(signed(i, vote) for i in signers))


# --- one DoubleSignError, one PersistedStateError: halts, not refusals ----------------------


def test_the_errors_that_halt_a_node_are_invariant_violations_not_refusals() -> None:
    for cls in (DoubleSignError, PersistedStateError):
        assert issubclass(cls, InvariantViolation)
        assert not issubclass(cls, GridchainError)
    assert DoubleSignError.code == "double_sign"
    assert PersistedStateError.code == "persisted_state"


def test_every_engine_raises_the_one_double_sign_error() -> None:
    assert pbft.DoubleSignError is DoubleSignError
    assert epob.DoubleSignError is DoubleSignError
    assert pob.DoubleSignError is DoubleSignError
    assert solo.DoubleSignError is DoubleSignError
    assert pbft.PersistedStateError is epob.PersistedStateError is pob.PersistedStateError


# --- the signing guard ------------------------------------------------------------------------


def test_the_guard_refuses_conflicts_and_going_back_per_kind() -> None:
    guard = SigningGuard[str]()
    assert guard.last("vote") is None
    guard.record("vote", 5, 2, A)
    guard.record("vote", 5, 2, A)  # the same signature again is fine
    assert not guard.permits("vote", 5, 2, B)  # another block in the same round
    assert not guard.permits("vote", 5, 1, A)  # an earlier round
    assert not guard.permits("vote", 4, 9, A)  # a lower height, whatever the round
    assert guard.permits("vote", 5, 3, B)
    assert guard.permits("vote", 6, 0, B)
    assert guard.permits("other", 5, 2, B)  # kinds are guarded separately
    with pytest.raises(DoubleSignError) as info:
        guard.record("vote", 5, 2, B)
    assert info.value.evidence["block_hash"] == B.hex()
    assert info.value.evidence["signed_block_hash"] == A.hex()
    assert info.value.evidence["kind"] == "vote"
    last = guard.last("vote")
    assert last is not None
    assert (last.height, last.round, last.block_hash) == (5, 2, A)


def test_a_refused_signature_leaves_the_guard_as_it_was() -> None:
    guard = SigningGuard[VoteStep]()
    guard.record(VoteStep.PREPARE, 5, 2, A)
    with pytest.raises(DoubleSignError, match="PREPARE"):
        guard.record(VoteStep.PREPARE, 5, 1, A)
    assert guard.permits(VoteStep.PREPARE, 5, 2, A)
    assert not guard.permits(VoteStep.PREPARE, 5, 2, B)


def test_a_missing_record_reads_as_none_and_a_damaged_one_halts() -> None:
    vote = commit_vote()
    persisted = {b"x/vote": vote.encode(), b"x/bad": b"\xc1"}

    def as_vote(raw: bytes) -> Vote:
        return decode(raw, Vote)

    assert read_record(persisted, b"x/vote", as_vote) == vote
    assert read_record(persisted, b"x/none", as_vote) is None
    with pytest.raises(PersistedStateError, match="x/bad") as info:
        read_record(persisted, b"x/bad", as_vote)
    assert info.value.evidence["key"] == b"x/bad".hex()


# --- validator sets and quorums ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "bft", "majority"), [(1, 1, 1), (3, 3, 2), (4, 3, 3), (7, 5, 4), (10, 7, 6)]
)
def test_a_validator_set_knows_its_quorum_and_faults(n: int, bft: int, majority: int) -> None:
    members = [k.public_key for k in keys(n)]
    strict = ValidatorSet(members)
    assert (strict.n, strict.q, strict.f) == (n, bft, (n - 1) // 3)
    loose = ValidatorSet(members, "majority")
    assert (loose.q, loose.f) == (majority, n - majority)
    assert quorum_size(n, "bft") == bft
    assert quorum_size(n, "majority") == majority


def test_a_validator_set_orders_by_genesis_and_names_primaries() -> None:
    v = vals()
    assert v.ordered(list(reversed(v.keys))) == list(v.keys)
    assert [v.primary(view) for view in range(5)] == [*v.keys, v.keys[0]]
    assert v.keys[2] in v
    assert b"\x00" * 32 not in v


def test_an_unusable_validator_set_raises_the_engines_own_error() -> None:
    class EngineConfigError(ConsensusConfigError):
        code = "engine_config"

    key = keys(1)[0].public_key
    for bad in ([], [key, key], [b"short"]):
        with pytest.raises(EngineConfigError):
            ValidatorSet(bad, error=EngineConfigError)
    with pytest.raises(ConsensusConfigError):
        ValidatorSet([key], "unanimous")  # type: ignore[arg-type]


# --- tallies ------------------------------------------------------------------------------------


def test_a_tally_counts_the_first_vote_of_each_validator_per_round() -> None:
    v = vals()
    tally = Tally(v.q)
    vote = commit_vote()
    for i in (2, 0):
        assert tally.add(0, A, signed(i, vote), vote) is None
    assert tally.quorums() == []
    assert tally.certificate(vote, v) is None
    assert tally.add(0, A, signed(0, vote), vote) is None  # a copy counts once
    assert tally.add(0, A, signed(3, vote), vote) is None
    assert tally.quorums() == [(0, A)]
    assert tally.voted(0, v.keys[3]) == A
    assert tally.voted(0, v.keys[1]) is None
    cert = tally.certificate(vote, v)
    assert cert is not None
    assert [s.validator for s in cert.signatures] == [v.keys[0], v.keys[2], v.keys[3]]


def test_a_second_different_vote_is_evidence_and_not_counted() -> None:
    v = vals()
    tally = Tally(v.q)
    first, second = commit_vote(block_hash=A), commit_vote(block_hash=B)
    tally.add(0, A, signed(1, first), first)
    assert tally.add(0, B, signed(1, second), second) == first
    assert tally.sigs.get((0, B)) is None
    assert tally.voted(0, v.keys[1]) == A
    # In a certified quorum (a polka someone assembled) the signature counts all the same.
    assert tally.add(0, B, signed(1, second), second, certified=True) == first
    assert v.keys[1] in tally.sigs[(0, B)]


def test_quorums_come_highest_round_first() -> None:
    v = vals()
    tally = Tally(v.q)
    for round_, block_hash in ((1, A), (4, B), (2, B)):
        vote = commit_vote(round_=round_, block_hash=block_hash)
        for i in range(v.q):
            tally.add(round_, block_hash, signed(i, vote), vote)
    assert tally.quorums() == [(4, B), (2, B), (1, A)]


# --- signature checks ---------------------------------------------------------------------------


def test_the_signature_cache_checks_each_signature_once() -> None:
    calls: list[bytes] = []

    def counting(key: bytes, sig: bytes, domain: Domain, chain_id: bytes, data: bytes) -> bool:
        calls.append(sig)
        return verify(key, sig, domain, chain_id, data)

    cache = SignatureCache(CID, counting)
    vote = commit_vote()
    sig = signed(0, vote)
    assert cache.check(sig, vote)
    assert cache.check(sig, vote)
    assert len(calls) == 1
    # A known signature over another record is refused without a second check.
    assert not cache.check(sig, commit_vote(block_hash=B))
    assert len(calls) == 1
    # A bad signature is never remembered as good.
    assert not cache.check(signed(1, commit_vote(block_hash=B)), vote)
    assert not SignatureCache(sha256(b"another chain")).check(sig, vote)


def test_the_caches_empty_when_full() -> None:
    calls: list[bytes] = []

    def counting(key: bytes, sig: bytes, domain: Domain, chain_id: bytes, data: bytes) -> bool:
        calls.append(sig)
        return verify(key, sig, domain, chain_id, data)

    cache = SignatureCache(CID, counting, limit=2)
    votes = [commit_vote(height=h) for h in (1, 2, 3)]
    for vote in votes:
        assert cache.check(signed(0, vote), vote)
    assert cache.check(signed(0, votes[0]), votes[0])
    assert len(calls) == 4  # the first was forgotten when the cache filled up
    hashes = BlockHashes(limit=1)
    block = make_block(CID, 1, b"\x00" * 32)
    assert hashes.of(block) == block.hash() == hashes.of(block)


def test_a_certificate_needs_q_distinct_members_that_all_verify() -> None:
    v = vals()
    check = SignatureCache(CID).check
    vote = commit_vote()
    assert certificate_signed(certificate(vote, [0, 1, 2]), v, v.q, check)
    assert not certificate_signed(certificate(vote, [0, 1]), v, v.q, check)
    assert not certificate_signed(certificate(vote, [0, 1, 1]), v, v.q, check)
    outsider = sign_payload(det_key("outsider"), CID, vote)
    padded = Certificate(vote, (*certificate(vote, [0, 1, 2]).signatures, outsider))
    assert not certificate_signed(padded, v, v.q, check)
    forged = Certificate(vote, (*certificate(vote, [0, 1]).signatures, signed(2, commit_vote(9))))
    assert not certificate_signed(forged, v, v.q, check)


def test_a_certificate_of_votes_the_engine_checked_costs_no_second_verification() -> None:
    """ADR 0047: the runtime gives its engine and its chain driver one RememberedVerify, so
    the driver's check of the commit certificate before a block is written finds the votes
    the engine verified as they arrived; before, it verified the q signatures again."""
    calls: list[bytes] = []

    def counting(key: bytes, sig: bytes, domain: Domain, chain_id: bytes, data: bytes) -> bool:
        calls.append(sig)
        return verify(key, sig, domain, chain_id, data)

    remembered = RememberedVerify(counting)
    engine_check = SignatureCache(CID, remembered).check
    vote = commit_vote()
    cert = certificate(vote, [0, 1, 2])
    for sig in cert.signatures:  # the engine, one vote at a time
        assert engine_check(sig, vote)
    assert len(calls) == 3
    cert.verify(CID, vals().keys, vals().q, remembered)  # the driver, before the write
    assert len(calls) == 3
    # Only successes are remembered: a forged signature is checked, and refused, every time.
    forged = Certificate(vote, (*cert.signatures[:2], signed(2, commit_vote(9))))
    for _ in range(2):
        with pytest.raises(SignatureError):
            forged.verify(CID, vals().keys, vals().q, remembered)
    assert len(calls) == 5
    # The same signature bytes over other bytes are another input: checked, and refused.
    other = Certificate(commit_vote(block_hash=B), cert.signatures)
    with pytest.raises(SignatureError):
        other.verify(CID, vals().keys, vals().q, remembered)
    assert len(calls) == 6


# --- one Decision --------------------------------------------------------------------------------


def test_one_decision_type_keeps_pbfts_tag_and_serves_both_engines() -> None:
    decision = Decision(certificate(commit_vote(), [0, 1, 2]))
    data = decision.encode()
    assert data == Decision(decision.certificate).encode()
    assert pbft.Decision is epob.Decision is Decision
    assert decode_pbft(data) == decision
    assert decode_epob(data) == decision
    prepare = Vote(3, 0, A, int(VoteStep.PREPARE))
    with pytest.raises(FieldValueError):
        check_decision(Decision(certificate(prepare, [0, 1, 2])))
    for decode_message in (decode_pbft, decode_epob):
        with pytest.raises(DecodeError):
            decode_message(Decision(certificate(prepare, [0, 1, 2])).encode())


def test_the_decision_tag_is_0x38_and_epobs_old_tag_is_refused() -> None:
    data = Decision(certificate(commit_vote(), [0, 1, 2])).encode()
    assert Decision.TYPE_TAG == 0x38
    assert data[:3] == b"\x93\x38\x01"  # the msgpack array [tag, version, certificate]
    retired = data[:1] + b"\x7c" + data[2:]
    with pytest.raises(DecodeError):
        decode_epob(retired)


# --- the alarm and the claims -------------------------------------------------------------------


def test_the_alarm_arms_only_when_the_earliest_deadline_moves() -> None:
    alarm = Alarm()
    out: list[Action] = []
    assert alarm.arm(out, (None, 30, 20)) == [SetTimer(20)]
    assert alarm.arm([], (20, None)) == []
    assert alarm.arm([], (None,)) == []
    alarm.fired()
    assert alarm.arm([], (20,)) == [SetTimer(20)]
    assert alarm.arm([], (15,)) == [SetTimer(15)]


def test_claims_follow_the_height_enough_validators_reached() -> None:
    claims = HeadClaims()
    a, b, c = (k.public_key for k in keys(3))
    claims.claim(a, 5, head=3)
    claims.claim(a, 4, head=3)  # lower than its claim: nothing new
    claims.claim(b, 3, head=3)  # not above our head: nothing
    assert (claims.dirty, len(claims), claims.of(a)) == (True, 1, 5)
    assert claims.reached_by(2) is None
    assert not claims.dirty  # looked at: clean until a claim changes
    claims.claim(b, 7, head=3)
    claims.claim(c, 6, head=3)
    assert claims.reached_by(1) == 7
    assert claims.reached_by(2) == 6
    assert claims.reached_by(3) == 5
    assert claims.best() == 7
    claims.forget_up_to(6)
    assert len(claims) == 1
    assert claims.of(c) == 0
    assert claims.of(b) == 7
