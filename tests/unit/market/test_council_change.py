"""The council replaces itself: members and threshold (market/council.py, ADR 0043).

Why: a council fixed in genesis.json could never lose a member who left or a lost key.  These
tests pin that the council changes only through its own proposal, that the new members (and
only they) act from the next transaction on, that an open proposal counts only the approvals
of members in office, that each wrong council is refused with its own code and no write, and
that a chain whose council never changes keeps its state.
"""

from __future__ import annotations

import pytest

from gridchain.genesis.builder import NamedKey
from gridchain.market.council import (
    COUNCIL_KEY,
    CouncilChangeError,
    CouncilRoleConflictError,
    CouncilThresholdError,
    DuplicateCouncilMemberError,
    EmptyCouncilError,
    apply_council_update,
    council_after,
    council_record,
)
from gridchain.market.errors import NotCouncilMemberError, NotGovernanceError, NotRegisteredError
from gridchain.market.governance import ProposalStatus
from gridchain.market.state import Overlay
from gridchain.protocol.errors import BadKeyError
from gridchain.protocol.governance import UpdateCouncil
from gridchain.protocol.tx import Mint, Propose
from tests.helpers import addr, det_key, small_bundle
from tests.unit.market.test_governance import Chain, admit, council_bundle

NEW = tuple(NamedKey(f"new-{i}", det_key(f"council-change/{i}")) for i in range(3))
NEW_KEYS = tuple(k.key.public_key for k in NEW)


def _gov_key() -> bytes:
    return bytes.fromhex(council_bundle().genesis.governance_public_key)


@pytest.mark.parametrize(
    ("body", "error", "code"),
    [
        (UpdateCouncil((), 1), EmptyCouncilError, "empty_council"),
        (UpdateCouncil((), 0), EmptyCouncilError, "empty_council"),
        (
            UpdateCouncil((NEW_KEYS[0], NEW_KEYS[1], NEW_KEYS[0]), 2),
            DuplicateCouncilMemberError,
            "duplicate_council_member",
        ),
        (UpdateCouncil(NEW_KEYS[:2], 3), CouncilThresholdError, "invalid_council_threshold"),
        (UpdateCouncil(NEW_KEYS[:2], 0), CouncilThresholdError, "invalid_council_threshold"),
    ],
)
def test_a_wrong_council_is_refused_with_its_code_and_writes_nothing(
    body: UpdateCouncil, error: type[CouncilChangeError], code: str
) -> None:
    view = Overlay(Chain(council_bundle()).view)
    with pytest.raises(error) as caught:
        apply_council_update(view, body, _gov_key(), 5)
    assert caught.value.code == code
    assert view.writes == {}


def test_the_governance_key_or_an_unregistrable_key_is_no_member() -> None:
    gov = _gov_key()
    with pytest.raises(CouncilRoleConflictError):
        council_after(UpdateCouncil((NEW_KEYS[0], gov), 1), gov)
    small_order = bytes([1]) + bytes(31)  # the identity point
    with pytest.raises(BadKeyError):
        council_after(UpdateCouncil((small_order,), 1), gov)


def test_a_refused_council_closes_the_proposal_failed_and_the_council_stays() -> None:
    chain = Chain(council_bundle())
    a, b, c = chain.bundle.council
    pid = chain.propose(a, UpdateCouncil(NEW_KEYS[:2], 3))
    proposal = chain.approve(b, pid)
    assert (proposal.status, proposal.error) == (
        ProposalStatus.FAILED,
        "invalid_council_threshold",
    )
    assert council_record(chain.view) is None
    chain.propose(c, admit())  # the old council still acts


def test_the_new_council_acts_from_the_next_transaction_and_the_old_one_no_longer() -> None:
    chain = Chain(council_bundle())
    a, b, c = chain.bundle.council
    pid = chain.propose(a, UpdateCouncil(NEW_KEYS, 2))
    assert chain.approve(b, pid).status == ProposalStatus.APPLIED
    record = council_record(chain.view)
    assert record is not None
    assert (record.members, record.threshold, record.since_height) == (NEW_KEYS, 2, chain.height)
    # a former member (no participant) is refused like any stranger; a participant, as such
    chain.refused(c, Propose(admit().encode(), 100), NotRegisteredError)
    peer = chain.bundle.participants[0]
    chain.refused(peer, Propose(admit().encode(), 100), NotCouncilMemberError)
    opened = chain.propose(NEW[0], admit())
    assert chain.proposal(opened).status == ProposalStatus.OPEN  # 1 of 2
    assert chain.approve(NEW[1], opened).status == ProposalStatus.APPLIED


def test_an_open_proposal_counts_only_the_approvals_of_members_in_office() -> None:
    """A 2-of-3 council hands over to {a, new} approving by 2: a proposal a and b opened
    before (one approval of b, who left, and none of a) needs a's and new's approvals."""
    chain = Chain(council_bundle())
    a, b, c = chain.bundle.council
    pending = chain.propose(b, admit())
    handover = chain.propose(a, UpdateCouncil((a.key.public_key, NEW_KEYS[0]), 2))
    assert chain.approve(c, handover).status == ProposalStatus.APPLIED
    assert chain.approve(a, pending).status == ProposalStatus.OPEN  # b's approval no longer counts
    applied = chain.approve(NEW[0], pending)
    assert applied.status == ProposalStatus.APPLIED
    assert applied.approvals == (b.key.public_key, a.key.public_key, NEW_KEYS[0])


def test_a_lone_governance_key_hands_over_to_a_council_and_signs_nothing_after() -> None:
    """A genesis without a council (the governance key alone, k = 1): its proposal applies at
    once; from then on its direct governance signatures are refused like anyone's."""
    chain = Chain(small_bundle())
    gov = chain.bundle.governance
    peer = chain.bundle.participants[0]
    chain.send(gov, Mint(addr(peer), 5))  # direct, as before
    chain.propose(gov, UpdateCouncil(NEW_KEYS[:2], 1))
    chain.refused(gov, Mint(addr(peer), 5), NotRegisteredError)
    chain.refused(gov, Propose(admit().encode(), 100), NotRegisteredError)
    chain.refused(peer, Mint(addr(peer), 5), NotGovernanceError)
    assert chain.proposal(chain.propose(NEW[1], Mint(addr(peer), 5))).status == (
        ProposalStatus.APPLIED
    )


def test_a_chain_whose_council_never_changes_keeps_its_state() -> None:
    chain = Chain(council_bundle())
    a, b, _ = chain.bundle.council
    chain.approve(b, chain.propose(a, admit()))
    assert chain.view.get(COUNCIL_KEY) is None
