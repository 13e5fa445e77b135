"""The validator set as chain state (market/validators.py, ADR 0035).

A governance UpdateValidators committed at height H is in force from H + 2; every refusal is
a typed error that writes nothing; a chain that never changes its set keeps the genesis state
(and state root) it always had.
"""

from __future__ import annotations

from typing import Any

import pytest

from gridchain.genesis.builder import GenesisBundle, build_genesis
from gridchain.market.app import Application
from gridchain.market.errors import ApplicationError, NotGovernanceError, SmallOrderKeyRefusedError
from gridchain.market.state import MerkleState, Overlay
from gridchain.market.validators import (
    ACTIVATION_DELAY,
    VALIDATOR_SCHEDULE_KEY,
    DuplicateValidatorError,
    EmptyValidatorChangeError,
    UnknownValidatorError,
    ValidatorChangeTooLargeError,
    ValidatorChangeUnsupportedError,
    ValidatorEpoch,
    ValidatorRoleConflictError,
    ValidatorSetTooSmallError,
    pending_change,
    removed_from,
    schedule_change,
    validator_schedule,
    validators_after,
    validators_at,
)
from gridchain.protocol.tx import UpdateValidators
from tests.helpers import (
    GENESIS_TIME_MS,
    block_context,
    det_key,
    key_factory,
    sealing_bundle,
    signed,
    small_bundle,
)

NEW = tuple(det_key(f"new validator {i}").public_key for i in range(4))


def pbft(validators: int = 4) -> GenesisBundle:
    return small_bundle(validators=validators, engine="pbft")


def built(engine: str, **kw: Any) -> GenesisBundle:
    return build_genesis(
        chain_name="gridchain-test",
        genesis_time_ms=GENESIS_TIME_MS,
        validators=4,
        participants=3,
        engine=engine,
        new_key=key_factory("valset"),
        **kw,
    )


def apply(
    bundle: GenesisBundle, state: MerkleState, body: UpdateValidators, height: int, nonce: int = 0
) -> Overlay:
    """Apply a governance UpdateValidators at ``height``; return the overlay with its writes."""
    app = Application(bundle.genesis)
    tx = signed(bundle.governance, bundle.genesis.chain_id, nonce, body)
    view = Overlay(state)
    app.signatures.require(tx)
    app.apply_tx(tx, view, block_context(height))
    return view


def keys_of(bundle: GenesisBundle) -> tuple[bytes, ...]:
    return bundle.genesis.validator_keys()


def test_a_change_committed_at_h_is_in_force_from_h_plus_2() -> None:
    bundle = pbft()
    state = Application(bundle.genesis).genesis_state()
    view = apply(bundle, state, UpdateValidators(add=(NEW[0],)), height=7)
    genesis_set = keys_of(bundle)
    assert ACTIVATION_DELAY == 2
    assert validators_at(view, bundle.genesis, 7) == genesis_set
    assert validators_at(view, bundle.genesis, 8) == genesis_set
    assert validators_at(view, bundle.genesis, 9) == (*genesis_set, NEW[0])
    assert validators_at(view, bundle.genesis, 1_000) == (*genesis_set, NEW[0])
    assert validators_at(view, bundle.genesis, 1) == genesis_set  # history is kept


def test_the_set_is_under_the_state_root_and_absent_until_it_changes() -> None:
    bundle = pbft()
    state = Application(bundle.genesis).genesis_state()
    assert state.get(VALIDATOR_SCHEDULE_KEY) is None  # genesis state as before
    before = state.root()
    view = apply(bundle, state, UpdateValidators(add=(NEW[0],)), height=3)
    after = MerkleState(dict(state.items()))
    after.apply(view.writes)
    assert after.get(VALIDATOR_SCHEDULE_KEY) is not None
    assert after.root() != before


def test_removal_then_the_removed_key_may_come_back_later() -> None:
    bundle = pbft(5)
    genesis_set = keys_of(bundle)
    state = Application(bundle.genesis).genesis_state()
    state.apply(apply(bundle, state, UpdateValidators(remove=(genesis_set[2],)), 4).writes)
    assert validators_at(state, bundle.genesis, 6) == tuple(
        k for k in genesis_set if k != genesis_set[2]
    )
    state.apply(apply(bundle, state, UpdateValidators(add=(genesis_set[2],)), 10, 1).writes)
    assert validators_at(state, bundle.genesis, 12)[-1] == genesis_set[2]
    assert [e.from_height for e in validator_schedule(state, bundle.genesis)] == [0, 6, 12]


def test_two_changes_in_one_block_add_up_into_one_epoch() -> None:
    bundle = pbft(7)
    state = Application(bundle.genesis).genesis_state()
    view = apply(bundle, state, UpdateValidators(add=(NEW[0],)), 5)
    tx2 = signed(bundle.governance, bundle.genesis.chain_id, 1, UpdateValidators(add=(NEW[1],)))
    Application(bundle.genesis).apply_tx(tx2, view, block_context(5))
    epochs = validator_schedule(view, bundle.genesis)
    assert [e.from_height for e in epochs] == [0, 7]
    assert epochs[-1].keys[-2:] == (NEW[0], NEW[1])


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (UpdateValidators(), EmptyValidatorChangeError),
        (UpdateValidators(add=(NEW[0], NEW[0])), DuplicateValidatorError),
        (UpdateValidators(add=(NEW[0],), remove=(NEW[0],)), DuplicateValidatorError),
        (UpdateValidators(remove=(NEW[3],)), UnknownValidatorError),
        (UpdateValidators(add=(b"\x00" * 32,)), SmallOrderKeyRefusedError),
        (UpdateValidators(remove=(det_key("x").public_key,)), UnknownValidatorError),
        # more than a third of 4 at once
        (UpdateValidators(add=(NEW[0], NEW[1])), ValidatorChangeTooLargeError),
    ],
)
def test_refusals_are_typed_and_write_nothing(body: UpdateValidators, error: type) -> None:
    bundle = pbft()
    state = Application(bundle.genesis).genesis_state()
    with pytest.raises(error) as caught:
        apply(bundle, state, body, 3)
    assert isinstance(caught.value, ApplicationError)
    assert state.get(VALIDATOR_SCHEDULE_KEY) is None


def test_adding_a_key_already_in_the_set_is_a_duplicate() -> None:
    bundle = pbft()
    state = Application(bundle.genesis).genesis_state()
    with pytest.raises(DuplicateValidatorError):
        apply(bundle, state, UpdateValidators(add=(keys_of(bundle)[1],)), 3)


def test_a_set_too_small_for_bft_is_refused() -> None:
    bundle = pbft(4)
    state = Application(bundle.genesis).genesis_state()
    with pytest.raises(ValidatorSetTooSmallError):
        apply(bundle, state, UpdateValidators(remove=(keys_of(bundle)[0],)), 3)


def test_no_more_than_a_third_changes_between_consecutive_heights() -> None:
    """Against the set in force just before the new one: a change in the same block as the
    one before it counts both; one block later it counts alone."""
    bundle = pbft(4)
    genesis_set = keys_of(bundle)
    state = Application(bundle.genesis).genesis_state()
    view = apply(bundle, state, UpdateValidators(add=(NEW[0],)), 3)
    tx = signed(
        bundle.governance, bundle.genesis.chain_id, 1, UpdateValidators(remove=(genesis_set[0],))
    )
    app = Application(bundle.genesis)
    with pytest.raises(ValidatorChangeTooLargeError):
        app.apply_tx(tx, Overlay(view), block_context(3))  # 4 -> 4, but two keys differ
    app.apply_tx(tx, view, block_context(4))  # 5 -> 4: one of five
    assert validators_at(view, bundle.genesis, 6) == (*genesis_set[1:], NEW[0])


def test_only_governance_changes_the_set() -> None:
    bundle = pbft()
    app = Application(bundle.genesis)
    state = app.genesis_state()
    tx = signed(bundle.participants[0], bundle.genesis.chain_id, 0, UpdateValidators(add=(NEW[0],)))
    with pytest.raises(NotGovernanceError):
        app.apply_tx(tx, Overlay(state), block_context(3))


def test_a_gateway_or_the_governance_key_is_never_a_validator() -> None:
    bundle = built("pbft", gateways=1)
    state = Application(bundle.genesis).genesis_state()
    for key in (bundle.gateways[0].key.public_key, bundle.governance.key.public_key):
        with pytest.raises(ValidatorRoleConflictError):
            apply(bundle, state, UpdateValidators(add=(key,)), 3)


def test_solo_takes_no_change() -> None:
    bundle = small_bundle(validators=1, engine="solo")
    state = Application(bundle.genesis).genesis_state()
    with pytest.raises(ValidatorChangeUnsupportedError):
        apply(bundle, state, UpdateValidators(add=(NEW[0],)), 3)


def test_pob_takes_changes_by_the_same_rule_down_to_four() -> None:
    """PoB used to refuse every change (ADR 0035); it takes them (ADR 0044), in force once a
    final run follows them rather than at H + 2 (ADR 0049, tests/unit/market/
    test_pob_set_safety.py)."""
    bundle = small_bundle(validators=4, engine="pob")
    state = Application(bundle.genesis).genesis_state()
    view = apply(bundle, state, UpdateValidators(add=(NEW[0],)), 3)
    assert validators_at(view, bundle.genesis, 5) == keys_of(bundle)
    pending = pending_change(view)
    assert pending is not None
    assert pending.keys == (*keys_of(bundle), NEW[0])
    with pytest.raises(ValidatorSetTooSmallError):
        apply(bundle, state, UpdateValidators(remove=(keys_of(bundle)[0],)), 3)


def test_a_pending_branch_reads_the_set_its_own_writes_leave() -> None:
    """PoB's pending blocks (ADR 0044): the newest pending write of the schedule wins, and a
    branch without one reads the committed state."""
    bundle = pbft(5)
    genesis_set = keys_of(bundle)
    state = Application(bundle.genesis).genesis_state()
    first = apply(bundle, state, UpdateValidators(remove=(genesis_set[4],)), 4).writes
    assert validators_after(state, bundle.genesis, [], 6) == genesis_set
    assert validators_after(state, bundle.genesis, [{}, first], 6) == genesis_set[:4]
    assert validators_after(state, bundle.genesis, [first], 5) == genesis_set


def test_removed_from_names_the_height_that_left_a_key_out_for_good() -> None:
    bundle = pbft(5)
    genesis_set = keys_of(bundle)
    epochs = (ValidatorEpoch(0, genesis_set),)
    assert removed_from(epochs, genesis_set[2]) is None
    assert removed_from(epochs, NEW[0]) is None  # never a validator: a joiner waiting
    gone = schedule_change(epochs, bundle.genesis, UpdateValidators(remove=(genesis_set[2],)), 7)
    assert removed_from(gone, genesis_set[2]) == 9
    back = schedule_change(gone, bundle.genesis, UpdateValidators(add=(genesis_set[2],)), 12)
    assert removed_from(back, genesis_set[2]) is None


def test_a_sealing_chain_adds_no_validator_but_may_remove_one() -> None:
    bundle = sealing_bundle(validators=5)
    state = Application(bundle.genesis).genesis_state()
    with pytest.raises(ValidatorChangeUnsupportedError):
        apply(bundle, state, UpdateValidators(add=(NEW[0],)), 3)
    view = apply(bundle, state, UpdateValidators(remove=(keys_of(bundle)[4],)), 3)
    assert len(validators_at(view, bundle.genesis, 5)) == 4


def test_epob_majority_allows_three() -> None:
    bundle = built("epob", consensus_params={"epob_quorum": "majority"})
    state = Application(bundle.genesis).genesis_state()
    view = apply(bundle, state, UpdateValidators(remove=(keys_of(bundle)[0],)), 3)
    assert len(validators_at(view, bundle.genesis, 5)) == 3


def test_the_schedule_is_a_pure_function_a_follower_can_replay() -> None:
    bundle = pbft()
    epochs = (ValidatorEpoch(0, keys_of(bundle)),)
    after = schedule_change(epochs, bundle.genesis, UpdateValidators(add=(NEW[0],)), 9)
    assert after[-1] == ValidatorEpoch(11, (*keys_of(bundle), NEW[0]))
    assert epochs == (ValidatorEpoch(0, keys_of(bundle)),)  # unchanged
