"""Council governance on chain: every action a proposal carries and every refusal (ADR 0034).

Why: admitting a household, registering or re-keying its meter and changing the money supply
are what a community does every month; they must need k of the council's n approvals, be
kept on chain with who approved them and what became of them, and refuse every wrong case
with a typed error that changes nothing.  An older genesis (one governance key) must keep
working exactly as before.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, cast

import pytest

from gridchain.genesis.builder import GenesisBundle, NamedKey
from gridchain.genesis.schema import GenesisError, parse_genesis
from gridchain.market.accounts import Account, get_account, get_participant, put_account
from gridchain.market.app import Application
from gridchain.market.errors import (
    ApplicationError,
    BadProposedRecordError,
    DoubleApprovalError,
    NotCouncilMemberError,
    NotGovernanceError,
    NotGovernanceKindError,
    NotRegisteredError,
    ParticipantBusyError,
    ProposalClosedError,
    ProposalExpiredError,
    ProposalExpiryError,
    SameBridgeKeyError,
    UnknownParticipantError,
    UnknownProposalError,
    UnregisteredMeterError,
)
from gridchain.market.governance import (
    MAX_PROPOSAL_LIFETIME_BLOCKS,
    ProposalRecord,
    ProposalStatus,
    check_proposed_record,
    get_proposal,
    iter_proposals,
)
from gridchain.market.meters import get_meter
from gridchain.market.state import MerkleState, Overlay
from gridchain.protocol.crypto import SigningKey
from gridchain.protocol.encoding import Record
from gridchain.protocol.governance import GOVERNANCE_KINDS, RemoveParticipant, ReplaceBridgeKey
from gridchain.protocol.meter import MeterType
from gridchain.protocol.tx import (
    TX_BODY_TYPES,
    Approve,
    Burn,
    MeterReadings,
    Mint,
    Propose,
    RegisterMeter,
    RegisterParticipant,
    Transaction,
    Transfer,
    TxBody,
    sign_tx,
)
from tests.helpers import addr, block_context, det_key, key_factory, small_bundle
from tests.unit.market.metering import BRIDGE_1, MeterChain, meter_entry
from tests.unit.protocol.test_encoding_properties import SAMPLES

NEWCOMER = det_key("gov/newcomer")
NEW_BRIDGE = det_key("gov/new-bridge")
EXPIRES = 100


def council_bundle(n: int = 3, k: int = 2, *, meters: bool = False) -> GenesisBundle:
    """small_bundle with a council of ``n`` keys approving by ``k`` (and pv-a, read by
    BRIDGE_1, when ``meters``)."""
    bundle = small_bundle()
    doc = bundle.genesis.model_dump(mode="json")
    new_key = key_factory("council")
    members = tuple(NamedKey(f"council-{i + 1}", new_key()) for i in range(n))
    doc["council"] = [
        {"name": m.name, "public_key": m.key.public_key.hex(), "address": m.address}
        for m in members
    ]
    doc["council_threshold"] = k
    if meters:
        doc["meters"] = [meter_entry("pv-a", bundle.participants[0].address, "PV", BRIDGE_1)]
    return replace(bundle, genesis=parse_genesis(doc), council=members)


@dataclass
class Chain:
    """One application and one pending state; transactions apply in order at ``height``."""

    bundle: GenesisBundle
    app: Application = field(init=False)
    view: Overlay = field(init=False)
    height: int = 1
    nonces: dict[bytes, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.app = Application(self.bundle.genesis)
        self.view = Overlay(self.app.genesis_state())

    def tx(self, key: SigningKey | NamedKey, body: TxBody) -> Transaction:
        signer = key.key if isinstance(key, NamedKey) else key
        nonce = self.nonces.get(signer.public_key, 0)
        return sign_tx(signer, self.bundle.genesis.chain_id, nonce, body)

    def send(self, key: SigningKey | NamedKey, body: TxBody) -> Transaction:
        tx = self.tx(key, body)
        self.app.signatures.require(tx)
        self.app.apply_tx(tx, self.view, block_context(self.height))
        self.nonces[tx.sender] = tx.nonce + 1
        return tx

    def refused(self, key: SigningKey | NamedKey, body: TxBody, error: type[Exception]) -> None:
        """The transaction is refused with ``error`` and writes nothing."""
        before = dict(self.view.writes)
        with pytest.raises(error):
            self.app.apply_tx(self.tx(key, body), self.view, block_context(self.height))
        assert dict(self.view.writes) == before

    def propose(self, member: NamedKey, record: Record, expires: int = EXPIRES) -> bytes:
        return self.send(member, Propose(record.encode(), expires)).hash()

    def approve(self, member: NamedKey, proposal_id: bytes) -> ProposalRecord:
        self.send(member, Approve(proposal_id))
        proposal = get_proposal(self.view, proposal_id)
        assert proposal is not None
        return proposal

    def next_block(self, height: int | None = None) -> None:
        self.height = self.height + 1 if height is None else height
        self.app.begin_block(self.view, block_context(self.height))

    def proposal(self, proposal_id: bytes) -> ProposalRecord:
        found = get_proposal(self.view, proposal_id)
        assert found is not None
        return found


@pytest.fixture
def chain() -> Chain:
    return Chain(council_bundle(meters=True))


def _council(chain: Chain) -> tuple[NamedKey, NamedKey, NamedKey]:
    a, b, c = chain.bundle.council
    return a, b, c


def admit(name: str = "peer-new", key: SigningKey = NEWCOMER) -> RegisterParticipant:
    return RegisterParticipant(key.public_key, name)


# --- genesis ---------------------------------------------------------------------------------


def test_an_old_genesis_is_a_council_of_the_governance_key_alone() -> None:
    bundle = small_bundle()
    genesis = bundle.genesis
    assert genesis.council_keys() == (bundle.governance.key.public_key,)
    assert genesis.threshold == 1
    assert genesis.governance_signs_directly
    assert "council" not in genesis.canonical_json().decode()


def test_a_council_changes_the_chain_id_and_is_listed() -> None:
    plain, council = small_bundle(), council_bundle()
    assert plain.genesis.chain_id != council.genesis.chain_id
    assert council.genesis.threshold == 2
    assert not council.genesis.governance_signs_directly
    assert len(council.genesis.council_keys()) == 3


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"council_threshold": 0}, "council_threshold"),
        ({"council_threshold": 4}, "council_threshold"),
        ({"council": []}, "council_threshold"),
    ],
)
def test_a_wrong_council_is_refused_naming_the_field(change: dict[str, Any], message: str) -> None:
    doc = council_bundle().genesis.model_dump(mode="json") | change
    with pytest.raises(GenesisError, match=message):
        parse_genesis(doc)


def test_a_council_with_a_repeated_key_or_the_governance_key_is_refused() -> None:
    bundle = council_bundle()
    doc = bundle.genesis.model_dump(mode="json")
    twice = [*doc["council"], {**doc["council"][0], "name": "council-x"}]
    with pytest.raises(GenesisError, match="public keys must be unique"):
        parse_genesis(doc | {"council": twice})
    gov = bundle.governance
    member = {"name": "gov", "public_key": gov.key.public_key.hex(), "address": gov.address}
    with pytest.raises(GenesisError, match="not a member"):
        parse_genesis(doc | {"council": [*doc["council"], member]})


def test_genesis_init_builds_n_council_keys() -> None:
    from gridchain.genesis.builder import build_genesis

    bundle = build_genesis(
        chain_name="c",
        genesis_time_ms=0,
        validators=1,
        participants=1,
        engine="solo",
        new_key=key_factory("init"),
        council=3,
        threshold=2,
    )
    assert [m.name for m in bundle.council] == ["council-1", "council-2", "council-3"]
    assert bundle.genesis.council_keys() == tuple(m.key.public_key for m in bundle.council)


# --- k of n ----------------------------------------------------------------------------------


def test_a_proposal_applies_at_the_kth_approval_and_keeps_who_approved(chain: Chain) -> None:
    a, b, _ = _council(chain)
    pid = chain.propose(a, admit())
    opened = chain.proposal(pid)
    assert opened.status == ProposalStatus.OPEN
    assert opened.approvals == (a.key.public_key,)
    assert get_participant(chain.view, addr(NEWCOMER)) is None
    chain.next_block()
    applied = chain.approve(b, pid)
    assert applied.status == ProposalStatus.APPLIED
    assert applied.approvals == (a.key.public_key, b.key.public_key)
    assert applied.closed_height == 2
    assert applied.kind == "RegisterParticipant"
    record = get_participant(chain.view, addr(NEWCOMER))
    assert record is not None
    assert record.name == "peer-new"
    assert [p.proposal_id for p in iter_proposals(chain.view)] == [pid]


def test_council_members_need_not_be_participants_but_only_propose_and_approve(
    chain: Chain,
) -> None:
    a, _, _ = _council(chain)
    peer = chain.bundle.participants[0]
    chain.refused(a, Transfer(addr(peer), 1), NotRegisteredError)


def test_a_stranger_or_participant_cannot_propose_or_approve(chain: Chain) -> None:
    a, _, _ = _council(chain)
    peer = chain.bundle.participants[0]
    chain.refused(peer, Propose(admit().encode(), EXPIRES), NotCouncilMemberError)
    chain.refused(det_key("stranger"), Propose(admit().encode(), EXPIRES), NotRegisteredError)
    pid = chain.propose(a, admit())
    chain.refused(peer, Approve(pid), NotCouncilMemberError)


def test_approving_twice_is_refused(chain: Chain) -> None:
    a, _, _ = _council(chain)
    pid = chain.send(a, Propose(Mint(addr(chain.bundle.participants[0]), 5).encode(), EXPIRES))
    chain.refused(a, Approve(pid.hash()), DoubleApprovalError)


def test_an_unknown_proposal_is_refused(chain: Chain) -> None:
    a, _, _ = _council(chain)
    chain.refused(a, Approve(b"\x07" * 32), UnknownProposalError)


def test_an_applied_proposal_is_closed(chain: Chain) -> None:
    a, b, c = _council(chain)
    pid = chain.propose(a, admit())
    chain.approve(b, pid)
    chain.refused(c, Approve(pid), ProposalClosedError)


def test_a_proposal_expires_after_its_last_block(chain: Chain) -> None:
    a, b, _ = _council(chain)
    pid = chain.propose(a, admit(), expires=3)
    chain.next_block(3)
    assert chain.proposal(pid).status == ProposalStatus.OPEN  # still approvable in block 3
    chain.next_block(4)
    expired = chain.proposal(pid)
    assert expired.status == ProposalStatus.EXPIRED
    assert expired.closed_height == 4
    chain.refused(b, Approve(pid), ProposalExpiredError)
    assert get_participant(chain.view, addr(NEWCOMER)) is None


def test_an_approval_after_the_last_block_is_refused_even_before_expiry_is_recorded(
    chain: Chain,
) -> None:
    a, b, _ = _council(chain)
    pid = chain.propose(a, admit(), expires=1)
    chain.height = 2  # no begin_block yet: the check does not depend on it
    chain.refused(b, Approve(pid), ProposalExpiredError)


@pytest.mark.parametrize("expires", [0, 1 + MAX_PROPOSAL_LIFETIME_BLOCKS + 1])
def test_an_expiry_behind_the_block_or_too_far_is_refused(chain: Chain, expires: int) -> None:
    a, _, _ = _council(chain)
    chain.refused(a, Propose(admit().encode(), expires), ProposalExpiryError)


def test_a_record_that_is_not_governance_is_refused(chain: Chain) -> None:
    a, _, _ = _council(chain)
    order = Transfer(addr(chain.bundle.participants[0]), 10)
    chain.refused(a, Propose(order.encode(), EXPIRES), NotGovernanceKindError)
    vote = Approve(b"\x01" * 32)
    chain.refused(a, Propose(vote.encode(), EXPIRES), NotGovernanceKindError)


@pytest.mark.parametrize(
    "data", [b"\x00", b"\x93\x11\x01\xc0", admit().encode() + b"\x00"], ids=str
)
def test_bytes_that_are_not_one_canonical_record_are_refused(chain: Chain, data: bytes) -> None:
    a, _, _ = _council(chain)
    chain.refused(a, Propose(data, EXPIRES), BadProposedRecordError)


def test_a_record_that_fails_at_the_kth_approval_is_closed_with_its_error(chain: Chain) -> None:
    a, b, c = _council(chain)
    pid = chain.propose(a, Mint(addr(NEWCOMER), 1000))  # NEWCOMER is not a participant
    failed = chain.approve(b, pid)
    assert failed.status == ProposalStatus.FAILED
    assert failed.error == "unknown_recipient"
    assert get_account(chain.view, addr(NEWCOMER)).balance_mc == 0
    assert chain.nonces[b.key.public_key] == 1  # the approval itself is on chain
    chain.refused(c, Approve(pid), ProposalClosedError)


def test_a_one_member_council_applies_at_the_proposal() -> None:
    chain = Chain(council_bundle(n=1, k=1))
    (only,) = chain.bundle.council
    pid = chain.propose(only, admit())
    assert chain.proposal(pid).status == ProposalStatus.APPLIED
    assert get_participant(chain.view, addr(NEWCOMER)) is not None


# --- direct governance signatures ---------------------------------------------------------


def test_an_old_genesis_still_takes_governance_signed_records_and_proposals() -> None:
    chain = Chain(small_bundle())
    gov = chain.bundle.governance
    chain.send(gov, admit())
    assert get_participant(chain.view, addr(NEWCOMER)) is not None
    other = det_key("gov/other")
    pid = chain.propose(gov, admit("peer-other", other))
    assert chain.proposal(pid).status == ProposalStatus.APPLIED
    assert get_participant(chain.view, addr(other)) is not None


def test_with_a_council_the_governance_key_signs_nothing(chain: Chain) -> None:
    chain.refused(chain.bundle.governance, admit(), NotRegisteredError)
    peer = chain.bundle.participants[0]
    with pytest.raises(NotGovernanceError, match="2 council approvals"):
        chain.app.apply_tx(chain.tx(peer, admit()), chain.view, block_context(1))


def test_every_governance_transaction_kind_is_refused_from_a_participant() -> None:
    """GOVERNANCE_KINDS and the application agree: a governance kind is governance-only (the
    refusal comes before the record is looked at, so any sample of the kind will do)."""
    chain = Chain(small_bundle())
    peer = chain.bundle.participants[0]
    direct = [k for k in GOVERNANCE_KINDS if k in TX_BODY_TYPES]
    assert {k.__name__ for k in direct} >= {"RegisterParticipant", "Mint", "Burn", "RegisterMeter"}
    for kind in direct:
        body = SAMPLES[kind]
        assert isinstance(body, kind)
        chain.refused(peer, cast(TxBody, body), NotGovernanceError)


def test_every_other_transaction_kind_is_not_proposable() -> None:
    others = [k for k in TX_BODY_TYPES if k not in GOVERNANCE_KINDS]
    assert Transfer in others
    assert Propose in others
    for kind in others:
        with pytest.raises(NotGovernanceKindError):
            check_proposed_record(SAMPLES[kind].encode())


# --- each action --------------------------------------------------------------------------


def _pass(chain: Chain, record: Record) -> ProposalRecord:
    a, b, _ = _council(chain)
    return chain.approve(b, chain.propose(a, record))


def test_mint_and_burn_by_proposal(chain: Chain) -> None:
    peer = addr(chain.bundle.participants[0])
    before = get_account(chain.view, peer).balance_mc
    assert _pass(chain, Mint(peer, 700)).status == ProposalStatus.APPLIED
    assert _pass(chain, Burn(peer, 200)).status == ProposalStatus.APPLIED
    assert get_account(chain.view, peer).balance_mc == before + 500


def test_register_a_meter_by_proposal(chain: Chain) -> None:
    _pass(chain, admit())
    meter = RegisterMeter(
        "new-net", addr(NEWCOMER), int(MeterType.NETMETER), NEW_BRIDGE.public_key, "eastron-sdm630"
    )
    assert _pass(chain, meter).status == ProposalStatus.APPLIED
    registered = get_meter(chain.view, "new-net")
    assert registered is not None
    assert registered.bridge_key == NEW_BRIDGE.public_key


def test_remove_a_participant(chain: Chain) -> None:
    peer = chain.bundle.participants[1]
    assert _pass(chain, RemoveParticipant(addr(peer))).status == ProposalStatus.APPLIED
    assert get_participant(chain.view, addr(peer)) is None
    chain.refused(peer, Transfer(addr(chain.bundle.participants[0]), 1), NotRegisteredError)
    assert get_account(chain.view, addr(peer)).balance_mc > 0  # the account stays


def test_removing_an_unknown_participant_fails_with_its_error(chain: Chain) -> None:
    failed = _pass(chain, RemoveParticipant(addr(NEWCOMER)))
    assert failed.status == ProposalStatus.FAILED
    assert failed.error == UnknownParticipantError.code


def test_a_participant_with_locked_money_is_not_removed(chain: Chain) -> None:
    peer = addr(chain.bundle.participants[1])
    account = get_account(chain.view, peer)
    put_account(chain.view, peer, Account(account.balance_mc, account.nonce, 10))
    failed = _pass(chain, RemoveParticipant(peer))
    assert failed.error == ParticipantBusyError.code
    assert get_participant(chain.view, peer) is not None


def test_replace_a_meters_bridge_key_and_the_new_bridge_extends_the_chain(chain: Chain) -> None:
    chain_id = chain.bundle.genesis.chain_id
    old = MeterChain("pv-a", BRIDGE_1, chain_id)
    chain.height = 10
    start = chain.bundle.genesis.genesis_time_ms
    chain.send(BRIDGE_1, MeterReadings((old.reading(start, start + 1000, 0, 10),)))
    assert _pass(chain, ReplaceBridgeKey("pv-a", NEW_BRIDGE.public_key)).status == 1
    meter = get_meter(chain.view, "pv-a")
    assert meter is not None
    assert meter.bridge_key == NEW_BRIDGE.public_key
    refused = MeterReadings((old.reading(start + 1000, start + 2000, 0, 20, advance=False),))
    chain.refused(BRIDGE_1, refused, ApplicationError)
    new = replace(old, key=NEW_BRIDGE)
    chain.send(NEW_BRIDGE, MeterReadings((new.reading(start + 1000, start + 2000, 0, 20),)))
    after = get_meter(chain.view, "pv-a")
    assert after is not None
    assert after.next_sequence == 2


@pytest.mark.parametrize(
    ("record", "error"),
    [
        (ReplaceBridgeKey("no-such-meter", NEW_BRIDGE.public_key), UnregisteredMeterError),
        (ReplaceBridgeKey("pv-a", BRIDGE_1.public_key), SameBridgeKeyError),
    ],
)
def test_a_wrong_bridge_key_replacement_fails_with_its_error(
    chain: Chain, record: ReplaceBridgeKey, error: type[ApplicationError]
) -> None:
    failed = _pass(chain, record)
    assert failed.status == ProposalStatus.FAILED
    assert failed.error == error.code


def test_a_small_order_bridge_key_fails(chain: Chain) -> None:
    failed = _pass(chain, ReplaceBridgeKey("pv-a", b"\x01" + b"\x00" * 31))
    assert failed.status == ProposalStatus.FAILED
    assert failed.error.endswith("key") or "key" in failed.error


def test_proposals_in_a_block_are_deterministic(chain: Chain) -> None:
    """Two validators executing the same block reach the same state root."""
    a, b, _ = _council(chain)
    bundle = chain.bundle
    txs = [
        sign_tx(a.key, bundle.genesis.chain_id, 0, Propose(admit().encode(), EXPIRES)),
    ]
    txs.append(sign_tx(b.key, bundle.genesis.chain_id, 0, Approve(txs[0].hash())))
    roots = set()
    for _ in range(2):
        app = Application(bundle.genesis)
        state: MerkleState = app.genesis_state()
        roots.add(app.execute_block(state, txs, block_context(1)).state_root)
    assert len(roots) == 1
