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
from gridchain.genesis.builder import GenesisBundle
from gridchain.market.app import Application
from gridchain.market.state import Overlay
from gridchain.market.validators import (
    VALIDATOR_SCHEDULE_KEY,
    ValidatorChangeTooLargeError,
    ValidatorQuorumOverlapError,
    honest_overlap,
    tolerated_faults,
    validators_at,
)
from gridchain.protocol.tx import UpdateValidators
from tests.helpers import block_context, det_key, signed, small_bundle

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


def apply_change(bundle: GenesisBundle, body: UpdateValidators, view: Overlay) -> None:
    app = Application(bundle.genesis)
    tx = signed(bundle.governance, bundle.genesis.chain_id, 0, body)
    app.signatures.require(tx)
    app.apply_tx(tx, view, block_context(3))


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
    assert validators_at(view, bundle.genesis, 5) == keys[removed:] + NEW[:added]


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
