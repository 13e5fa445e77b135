"""A gateway follows a council that replaced itself (node/follower.py, ADR 0043).

Why: a gateway has no state; it learns when a council-approved validator-set change applies
by counting approvals in the blocks it follows.  Once the council changed, it must count the
new members' approvals against the new threshold, or it would check later certificates
against the wrong validator set (and refuse the chain it serves).
"""

from __future__ import annotations

import pytest

from gridchain.genesis.builder import build_genesis
from gridchain.node.follower import Follower
from gridchain.protocol.errors import SignatureError
from gridchain.protocol.governance import UpdateCouncil
from gridchain.protocol.tx import Approve, Propose, UpdateValidators
from tests.helpers import GENESIS_TIME_MS, det_key, key_factory, signed
from tests.unit.node.test_validator_set_driver import Chain

NEW_MEMBER = det_key("council-follower/new")


def test_a_gateway_counts_the_new_councils_approvals() -> None:
    """2 of 3 hand over to NEW_MEMBER alone (k = 1) in block 2; NEW_MEMBER's proposal to
    remove a validator applies at once in block 3, so the set changes from 5 on."""
    bundle = build_genesis(
        chain_name="gridchain-test",
        genesis_time_ms=GENESIS_TIME_MS,
        validators=5,
        participants=3,
        engine="pbft",
        new_key=key_factory("council-follower"),
        gateways=1,
        council=3,
        threshold=2,
    )
    chain = Chain(bundle)
    chain_id = bundle.genesis.chain_id
    first, second = bundle.council[0], bundle.council[1]
    handover = signed(
        first, chain_id, 0, Propose(UpdateCouncil((NEW_MEMBER.public_key,), 1).encode(), 100)
    )
    approval = signed(second, chain_id, 0, Approve(handover.hash()))
    gone = bundle.validators[4].key.public_key
    removal = signed(
        NEW_MEMBER, chain_id, 0, Propose(UpdateValidators(remove=(gone,)).encode(), 100)
    )
    blocks = [chain.next((handover,)), chain.next((approval,)), chain.next((removal,))]
    blocks += [chain.next(), chain.next()]
    follower = Follower(bundle.genesis, bundle.gateways[0].key, [])
    for block in blocks[:4]:  # heights 1-4: the old set, the removed validator counts
        follower._accept(chain.certified(block, (1, 2, 3, 4)))
    with pytest.raises(SignatureError):
        follower._accept(chain.certified(blocks[4], (1, 2, 3, 4)))
    follower._accept(chain.certified(blocks[4], (0, 1, 2)))
    assert follower.head.height == 5
