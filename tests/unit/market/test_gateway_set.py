"""The gateway set as chain state, changed by the council (market/gateways.py, ADR 0043).

Why: gateways were named in genesis.json only; a community adds one for more households or
retires a lost device.  These tests pin that the council's UpdateGateways changes the set the
validators link with, that every wrong change is refused with its code and no write, and that a
chain whose gateways never change keeps its state.
"""

from __future__ import annotations

import pytest

from gridchain.genesis.builder import GenesisBundle, build_genesis
from gridchain.market.app import Application
from gridchain.market.gateways import (
    GATEWAYS_KEY,
    DuplicateGatewayError,
    EmptyGatewayChangeError,
    GatewayChangeError,
    GatewayChangeUnsupportedError,
    GatewayRoleConflictError,
    UnknownGatewayError,
    apply_gateway_update,
    gateways_in_force,
)
from gridchain.market.governance import ProposalStatus
from gridchain.market.state import Overlay
from gridchain.market.validators import ValidatorRoleConflictError
from gridchain.protocol.errors import BadKeyError
from gridchain.protocol.governance import UpdateGateways
from gridchain.protocol.tx import UpdateValidators
from tests.helpers import GENESIS_TIME_MS, det_key, key_factory, small_bundle
from tests.unit.market.test_governance import Chain

NEW = det_key("gateway-set/new").public_key
OTHER = det_key("gateway-set/other").public_key


def pbft_bundle(council: int = 3) -> GenesisBundle:
    return build_genesis(
        chain_name="gridchain-test",
        genesis_time_ms=GENESIS_TIME_MS,
        validators=4,
        participants=3,
        engine="pbft",
        new_key=key_factory("gateway-set"),
        gateways=1,
        council=council,
        threshold=2 if council else 0,
    )


def _view(bundle: GenesisBundle) -> Overlay:
    return Overlay(Application(bundle.genesis).genesis_state())


def _refused(
    body: UpdateGateways, error: type[Exception], bundle: GenesisBundle | None = None
) -> None:
    bundle = bundle or pbft_bundle()
    view = _view(bundle)
    council = frozenset(k.key.public_key for k in bundle.council)
    with pytest.raises(error):
        apply_gateway_update(view, bundle.genesis, body, council)
    assert view.writes == {}


def test_the_council_adds_and_removes_gateways() -> None:
    bundle = pbft_bundle()
    chain = Chain(bundle)
    a, b, _ = bundle.council
    genesis_gate = bundle.gateways[0].key.public_key
    assert gateways_in_force(chain.view, bundle.genesis) == (genesis_gate,)
    pid = chain.propose(a, UpdateGateways(add=(NEW,), remove=()))
    assert gateways_in_force(chain.view, bundle.genesis) == (genesis_gate,)  # 1 of 2
    assert chain.approve(b, pid).status == ProposalStatus.APPLIED
    assert gateways_in_force(chain.view, bundle.genesis) == (genesis_gate, NEW)
    pid = chain.propose(a, UpdateGateways(add=(), remove=(genesis_gate,)))
    chain.approve(b, pid)
    assert gateways_in_force(chain.view, bundle.genesis) == (NEW,)


@pytest.mark.parametrize(
    ("body", "error", "code"),
    [
        (UpdateGateways((), ()), EmptyGatewayChangeError, "empty_gateway_change"),
        (UpdateGateways((NEW,), (NEW,)), DuplicateGatewayError, "duplicate_gateway"),
        (UpdateGateways((NEW, NEW), ()), DuplicateGatewayError, "duplicate_gateway"),
        (UpdateGateways((), (OTHER,)), UnknownGatewayError, "unknown_gateway"),
    ],
)
def test_a_wrong_change_is_refused_with_its_code(
    body: UpdateGateways, error: type[GatewayChangeError], code: str
) -> None:
    _refused(body, error)
    assert error.code == code


def test_a_gateway_already_in_the_set_is_not_added_again() -> None:
    bundle = pbft_bundle()
    _refused(
        UpdateGateways((bundle.gateways[0].key.public_key,), ()), DuplicateGatewayError, bundle
    )


def test_a_key_with_another_role_or_a_bad_key_is_refused() -> None:
    bundle = pbft_bundle()
    for taken in (
        bundle.validators[0].key.public_key,
        bundle.council[0].key.public_key,
        bytes.fromhex(bundle.genesis.governance_public_key),
    ):
        _refused(UpdateGateways((taken,), ()), GatewayRoleConflictError, bundle)
    _refused(UpdateGateways((bytes([1]) + bytes(31),), ()), BadKeyError, bundle)


def test_a_validator_scheduled_by_the_chain_is_no_gateway_and_a_gateway_no_validator() -> None:
    bundle = pbft_bundle(council=0)
    chain = Chain(bundle)
    chain.send(bundle.governance, UpdateValidators(add=(NEW,), remove=()))
    with pytest.raises(GatewayRoleConflictError):
        apply_gateway_update(
            Overlay(chain.view), bundle.genesis, UpdateGateways((NEW,), ()), frozenset()
        )
    gate = bundle.gateways[0].key.public_key
    chain.refused(
        bundle.governance, UpdateValidators(add=(gate,), remove=()), ValidatorRoleConflictError
    )


def test_a_solo_chain_without_genesis_gateways_takes_no_change() -> None:
    _refused(UpdateGateways((NEW,), ()), GatewayChangeUnsupportedError, small_bundle())


def test_a_refused_change_closes_the_proposal_failed() -> None:
    bundle = pbft_bundle()
    chain = Chain(bundle)
    a, b, _ = bundle.council
    pid = chain.propose(a, UpdateGateways((), (OTHER,)))
    proposal = chain.approve(b, pid)
    assert (proposal.status, proposal.error) == (ProposalStatus.FAILED, "unknown_gateway")
    assert chain.view.get(GATEWAYS_KEY) is None
