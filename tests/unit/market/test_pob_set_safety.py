"""PoB refuses the validator-set changes whose quorums need not meet (ADR 0049).

PoB counts the votes for a block of height h against the set of h + 1 on the block's branch
(ADR 0044), and Streamlet's safety argument needs a quorum that notarized a block of height h
to share an honest validator with one that notarized a block of height h - 1 or h + 1 (on any
branch).  Across a change those are quorums of the set before and of the set after it, which
"at most a third of the set at once" (ADR 0035) does not make meet: a 7-validator set that
swaps one key, or a 10-validator set that drops three, leaves quorums that share only two
validators, both possibly Byzantine.  ``honest_overlap`` is the one place the bound is
computed; these tests check that it is exact and that the chain applies it to PoB only.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import pytest

from gridchain.consensus.kernel.validators import quorum_size
from gridchain.genesis.builder import GenesisBundle, build_genesis
from gridchain.market.app import Application, BlockContext
from gridchain.market.state import Overlay
from gridchain.market.validators import (
    PENDING_CHANGE_KEY,
    VALIDATOR_SCHEDULE_KEY,
    PendingValidatorChange,
    ValidatorChangePendingError,
    ValidatorChangeTooLargeError,
    ValidatorEpoch,
    ValidatorQuorumOverlapError,
    advance_pending,
    honest_overlap,
    pending_change,
    pob_pending_change,
    tolerated_faults,
    validator_schedule,
    validators_at,
)
from gridchain.protocol.tx import UpdateValidators
from tests.helpers import GENESIS_TIME_MS, det_key, key_factory, signed, small_bundle

NEW = tuple(det_key(f"pob safety new {i}").public_key for i in range(4))


def keyset(n: int, tag: str = "k") -> tuple[bytes, ...]:
    return tuple(f"{tag}{i:02d}".encode().ljust(32, b".") for i in range(n))


def worst_honest_overlap(before: Sequence[bytes], after: Sequence[bytes]) -> int:
    """By exhaustion: the fewest honest validators two quorums can share when the adversary
    picks both quorums and puts up to f of each set's validators (the same ones count in
    both) where they hurt most, i.e. in the intersection."""
    f_before, f_after = tolerated_faults(len(before)), tolerated_faults(len(after))
    q_before = quorum_size(len(before), "bft")
    q_after = quorum_size(len(after), "bft")
    worst = len(before) + len(after)
    for one in combinations(before, q_before):
        for two in combinations(after, q_after):
            shared = len(set(one) & set(two))
            worst = min(worst, shared - min(shared, f_before, f_after))
    return worst


def change(before: tuple[bytes, ...], removed: int, added: int) -> tuple[bytes, ...]:
    return before[removed:] + keyset(added, "new")


def test_the_faults_rule_is_the_engines_quorum_rule() -> None:
    """market/ cannot import consensus/ (the layers): the two spellings must agree."""
    for n in range(1, 1025):
        assert tolerated_faults(n) == n - quorum_size(n, "bft")


@pytest.mark.parametrize("n", range(4, 11))
def test_honest_overlap_is_exact_for_every_small_change(n: int) -> None:
    """The closed form equals the adversary's best by exhaustion, for every change of up to
    three removals and three additions of a set of 4..10 that leaves at least 4."""
    before = keyset(n)
    for removed in range(4):
        for added in range(4):
            if n - removed + added < 4 or removed + added == 0:
                continue
            after = change(before, removed, added)
            assert honest_overlap(before, after) == max(0, worst_honest_overlap(before, after)), (
                n,
                removed,
                added,
            )


def test_the_cases_of_adr_0044_and_the_ones_it_missed() -> None:
    """ADR 0044's examples keep an honest validator in common; the 10 -> 7 it named does not,
    and neither does swapping one key of a 4-, 7- or 10-validator set (n = 3f + 1 leaves no
    slack), which ADR 0044's "one or two keys" counted as safe."""
    for n, removed, added in ((4, 0, 1), (5, 1, 0), (7, 0, 2), (7, 2, 0), (10, 2, 0), (10, 0, 2)):
        assert honest_overlap(keyset(n), change(keyset(n), removed, added)) >= 1
    for n, removed, added in ((10, 3, 0), (7, 1, 1), (10, 1, 1), (4, 1, 1), (10, 0, 3)):
        assert honest_overlap(keyset(n), change(keyset(n), removed, added)) == 0


def pob(validators: int) -> GenesisBundle:
    return small_bundle(validators=validators, engine="pob")


def apply_change(
    bundle: GenesisBundle,
    body: UpdateValidators,
    view: Overlay,
    *,
    height: int = 3,
    round_: int = 0,
    nonce: int = 0,
) -> None:
    app = Application(bundle.genesis)
    tx = signed(bundle.governance, bundle.genesis.chain_id, nonce, body)
    app.signatures.require(tx)
    app.apply_tx(tx, view, BlockContext(height, GENESIS_TIME_MS + 1000 * height, b"", round_))


def begin(bundle: GenesisBundle, view: Overlay, height: int, round_: int) -> None:
    """What a block of ``height`` and ``round_`` does before its transactions."""
    app = Application(bundle.genesis)
    app.begin_block(view, BlockContext(height, GENESIS_TIME_MS + 1000 * height, b"", round_))


@pytest.mark.parametrize(
    ("validators", "removed", "added"),
    [(7, 1, 1), (10, 3, 0), (10, 0, 3), (10, 1, 1)],
)
def test_pob_refuses_a_change_whose_quorums_need_not_meet_and_writes_nothing(
    validators: int, removed: int, added: int
) -> None:
    """Each of these is within a third of the set (the engines' common rule accepts it)."""
    bundle = pob(validators)
    keys = bundle.genesis.validator_keys()
    body = UpdateValidators(add=NEW[:added], remove=keys[:removed])
    state = Application(bundle.genesis).genesis_state()
    view = Overlay(state)
    with pytest.raises(ValidatorQuorumOverlapError) as refused:
        apply_change(bundle, body, view)
    assert refused.value.code == "validator_quorum_overlap"
    assert VALIDATOR_SCHEDULE_KEY not in view.writes
    assert validators_at(view, bundle.genesis, 10) == keys
    # The same change on PBFT is taken: each PBFT height is certified by its own set alone.
    pbft = small_bundle(validators=validators, engine="pbft")
    pbft_keys = pbft.genesis.validator_keys()
    pbft_view = Overlay(Application(pbft.genesis).genesis_state())
    apply_change(pbft, UpdateValidators(add=NEW[:added], remove=pbft_keys[:removed]), pbft_view)
    assert len(validators_at(pbft_view, pbft.genesis, 5)) == validators - removed + added


@pytest.mark.parametrize(
    ("validators", "removed", "added"),
    [(4, 0, 1), (5, 1, 0), (7, 0, 2), (7, 2, 0), (10, 2, 0), (10, 0, 2)],
)
def test_pob_takes_a_change_whose_quorums_keep_an_honest_validator(
    validators: int, removed: int, added: int
) -> None:
    bundle = pob(validators)
    keys = bundle.genesis.validator_keys()
    view = Overlay(Application(bundle.genesis).genesis_state())
    apply_change(bundle, UpdateValidators(add=NEW[:added], remove=keys[:removed]), view)
    pending = pending_change(view)
    assert pending is not None
    assert pending.keys == keys[removed:] + NEW[:added]


def test_the_third_rule_still_comes_first() -> None:
    """A change over a third of the set keeps its own refusal (and code)."""
    bundle = pob(4)
    keys = bundle.genesis.validator_keys()
    with pytest.raises(ValidatorChangeTooLargeError):
        apply_change(
            bundle,
            UpdateValidators(add=NEW[:2]),
            Overlay(Application(bundle.genesis).genesis_state()),
        )
    with pytest.raises(ValidatorChangeTooLargeError):
        apply_change(
            bundle,
            UpdateValidators(add=NEW[:1], remove=keys[:1]),
            Overlay(Application(bundle.genesis).genesis_state()),
        )


def test_a_pob_change_comes_into_force_two_heights_after_a_final_run() -> None:
    """Carried by block 3 of round 5: blocks 4 and 5 of rounds 6 and 7 make the run 3, 4, 5,
    final once anything above it is notarized, so block 5 schedules the set for height 7;
    until then every height keeps the old set (the change's block alone proves nothing)."""
    bundle = pob(4)
    keys = bundle.genesis.validator_keys()
    view = Overlay(Application(bundle.genesis).genesis_state())
    apply_change(bundle, UpdateValidators(add=NEW[:1]), view, height=3, round_=5)
    assert VALIDATOR_SCHEDULE_KEY not in view.writes
    begin(bundle, view, 4, 6)
    assert validators_at(view, bundle.genesis, 100) == keys
    begin(bundle, view, 5, 7)
    assert validators_at(view, bundle.genesis, 6) == keys
    assert validators_at(view, bundle.genesis, 7) == (*keys, NEW[0])
    assert pending_change(view) is None
    assert view.writes[PENDING_CHANGE_KEY] is None


def test_a_round_without_a_block_starts_the_run_again() -> None:
    """Rounds 5, 7, 8, 9: the run 5-7 breaks, 7, 8, 9 completes at block 6 (height 8 on)."""
    bundle = pob(4)
    keys = bundle.genesis.validator_keys()
    view = Overlay(Application(bundle.genesis).genesis_state())
    apply_change(bundle, UpdateValidators(add=NEW[:1]), view, height=3, round_=5)
    for height, round_ in ((4, 7), (5, 8)):
        begin(bundle, view, height, round_)
        assert pending_change(view) is not None
    begin(bundle, view, 6, 9)
    assert validators_at(view, bundle.genesis, 7) == keys
    assert validators_at(view, bundle.genesis, 8) == (*keys, NEW[0])


def test_a_deeper_finality_asks_for_a_longer_run() -> None:
    bundle = build_genesis(
        chain_name="gridchain-test",
        genesis_time_ms=GENESIS_TIME_MS,
        validators=4,
        participants=3,
        engine="pob",
        new_key=key_factory("pob safety"),
        consensus_params={"finality_depth": 4},
    )
    view = Overlay(Application(bundle.genesis).genesis_state())
    apply_change(bundle, UpdateValidators(add=NEW[:1]), view, height=3, round_=5)
    begin(bundle, view, 4, 6)
    begin(bundle, view, 5, 7)
    assert pending_change(view) is not None
    begin(bundle, view, 6, 8)
    assert pending_change(view) is None
    assert validators_at(view, bundle.genesis, 8)[-1] == NEW[0]


def test_one_pob_change_at_a_time_measured_against_the_set_before_it() -> None:
    """A second change while one is pending is refused and writes nothing; once the first is
    in force, the next is measured against the set it left (5 -> 4 is fine, 4 -> 3 would not
    be)."""
    bundle = pob(4)
    keys = bundle.genesis.validator_keys()
    view = Overlay(Application(bundle.genesis).genesis_state())
    apply_change(bundle, UpdateValidators(add=NEW[:1]), view, height=3, round_=5)
    second = Overlay(view)
    with pytest.raises(ValidatorChangePendingError) as refused:
        apply_change(bundle, UpdateValidators(remove=keys[:1]), second, height=4, nonce=1)
    assert refused.value.code == "validator_change_pending"
    assert not second.writes
    for height, round_ in ((4, 6), (5, 7)):
        begin(bundle, view, height, round_)
    # in the same block that brought the first one in (its set from 7 on)
    apply_change(bundle, UpdateValidators(remove=keys[:1]), view, height=5, round_=7, nonce=1)
    pending = pending_change(view)
    assert pending is not None
    assert pending.keys == (*keys[1:], NEW[0])
    assert validators_at(view, bundle.genesis, 100) == (*keys, NEW[0])


def test_a_follower_replays_the_same_schedule_from_headers() -> None:
    """node/follower.py has no state: the pure functions it calls give the state's schedule."""
    bundle = pob(4)
    genesis = bundle.genesis
    view = Overlay(Application(genesis).genesis_state())
    body = UpdateValidators(add=NEW[:1])
    apply_change(bundle, body, view, height=3, round_=5)
    epochs: tuple[ValidatorEpoch, ...] = (ValidatorEpoch(0, genesis.validator_keys()),)
    pending: PendingValidatorChange | None = pob_pending_change(
        epochs, None, genesis, body, height=3, round_=5
    )
    for height, round_ in ((4, 7), (5, 8), (6, 9)):
        begin(bundle, view, height, round_)
        assert pending is not None
        epochs, pending = advance_pending(epochs, pending, genesis, height, round_)
        assert pending == pending_change(view)
    assert epochs == validator_schedule(view, genesis)
