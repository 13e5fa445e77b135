"""Council proposals on chain: propose, approve, apply at the k-th approval, expire.

Genesis names a council of keys and a threshold k (genesis.schema.Genesis.council_keys and
threshold; an older genesis has the governance key alone and k = 1).  A council member's
:class:`~gridchain.protocol.tx.Propose` opens a proposal carrying one governance record and
counts as its first approval; :class:`~gridchain.protocol.tx.Approve` by another member adds
one.  The transaction that brings the approvals to k applies the record, in that block, through
the application's one governance code path (the ``apply_record`` callback), exactly as a
record signed by the governance key would apply.  Should the record not apply then (the meter
was registered meanwhile, the balance is gone), the proposal is closed as failed with the
record's typed error code, and the approving transaction itself still counts: the council sees
why, and a corrected record is a new proposal.

A proposal not applied by block ``expires_at_height`` is marked expired by the first block
after it (:func:`expire_due`).  Every proposal stays in the state with who approved it and its
outcome, so the chain itself answers "who admitted this household".

State layout (values are canonical records, tag 0x88):

* ``gprop:`` + proposal id -> :class:`ProposalRecord`;
* ``gopen:`` + expires_at_height (8 bytes, big-endian) + proposal id -> b"": the open
  proposals by expiry, so a block finds the ones it expires without a full scan.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Annotated

from gridchain.market.errors import (
    BadProposedRecordError,
    DoubleApprovalError,
    NotCouncilMemberError,
    NotGovernanceKindError,
    ProposalClosedError,
    ProposalExpiredError,
    ProposalExpiryError,
    UnknownProposalError,
)
from gridchain.market.state import Overlay, StateReader
from gridchain.protocol.encoding import (
    U8,
    U64,
    Bytes32,
    LabelledEnum,
    Record,
    Size,
    decode,
    register,
)
from gridchain.protocol.errors import DecodeError, GridchainError
from gridchain.protocol.governance import GOVERNANCE_KINDS, decode_proposed
from gridchain.protocol.tx import MAX_PROPOSED_RECORD_BYTES, Approve, Propose

PROPOSAL_PREFIX = b"gprop:"
OPEN_PREFIX = b"gopen:"
#: The longest a proposal may stay open, in blocks: a stale proposal should not be revived
#: months later by a member who forgot it.
MAX_PROPOSAL_LIFETIME_BLOCKS = 1_000_000
#: The most members a council has (genesis.schema.MAX_COUNCIL).
MAX_APPROVALS = 64


class ProposalStatus(LabelledEnum):
    OPEN = 0
    APPLIED = 1
    EXPIRED = 2
    FAILED = 3


@register(0x88)
@dataclass(frozen=True, slots=True)
class ProposalRecord(Record):
    """A proposal and what became of it.

    ``approvals`` are the approving members' keys in the order they approved (the proposer
    first); ``closed_height`` is the block that applied, failed or expired it (0 while open);
    ``error`` is the record's error code when it failed to apply.
    """

    proposal_id: Bytes32
    proposer: Bytes32
    record: Annotated[bytes, Size(1, MAX_PROPOSED_RECORD_BYTES)]
    expires_at_height: U64
    proposed_height: U64
    approvals: Annotated[tuple[Bytes32, ...], Size(1, MAX_APPROVALS)]
    status: U8 = int(ProposalStatus.OPEN)
    closed_height: U64 = 0
    error: Annotated[str, Size(0, 64)] = ""

    @property
    def kind(self) -> str:
        """The carried record's kind (checked at proposal, so it decodes)."""
        return type(decode_proposed(self.record)).__name__


#: Applies one governance record with governance authority (market.app.Application's one
#: governance code path); raises a GridchainError without writing when it does not apply.
ApplyRecord = Callable[[Overlay, Record], None]


@dataclass(frozen=True, slots=True)
class Council:
    """Who may propose and approve, and how many approvals apply a proposal."""

    keys: frozenset[bytes]
    threshold: int

    @classmethod
    def of(cls, keys: Sequence[bytes], threshold: int) -> Council:
        return cls(frozenset(keys), threshold)

    def require_member(self, key: bytes) -> None:
        if key not in self.keys:
            raise NotCouncilMemberError(f"{key.hex()[:16]}... is not a council member")


# --- keys and reads ----------------------------------------------------------------------------


def proposal_key(proposal_id: bytes) -> bytes:
    return PROPOSAL_PREFIX + proposal_id


def _open_key(expires_at_height: int, proposal_id: bytes) -> bytes:
    return OPEN_PREFIX + expires_at_height.to_bytes(8, "big") + proposal_id


def get_proposal(state: StateReader, proposal_id: bytes) -> ProposalRecord | None:
    raw = state.get(proposal_key(proposal_id))
    return None if raw is None else decode(raw, ProposalRecord)


def iter_proposals(state: StateReader) -> Iterator[ProposalRecord]:
    """Every proposal the chain holds, by id."""
    for _, raw in state.scan(PROPOSAL_PREFIX):
        yield decode(raw, ProposalRecord)


def check_proposed_record(data: bytes) -> Record:
    """The governance record a proposal carries, or the typed refusal of what is wrong."""
    try:
        record = decode_proposed(data)
    except DecodeError as exc:
        raise BadProposedRecordError(f"proposed record: {exc.message}") from None
    if type(record) not in GOVERNANCE_KINDS:
        proposable = ", ".join(k.__name__ for k in GOVERNANCE_KINDS)
        raise NotGovernanceKindError(
            f"{type(record).__name__} is not a governance record (proposable: {proposable})"
        )
    return record


# --- transactions ------------------------------------------------------------------------------


def propose(
    view: Overlay,
    council: Council,
    *,
    proposer: bytes,
    proposal_id: bytes,
    body: Propose,
    height: int,
    apply_record: ApplyRecord,
) -> ProposalRecord:
    """Open a proposal (the proposer's approval included); apply it at once when k = 1."""
    council.require_member(proposer)
    if body.expires_at_height < height:
        raise ProposalExpiryError(
            f"expires_at_height {body.expires_at_height} is behind this block ({height})"
        )
    if body.expires_at_height - height > MAX_PROPOSAL_LIFETIME_BLOCKS:
        raise ProposalExpiryError(f"a proposal lives at most {MAX_PROPOSAL_LIFETIME_BLOCKS} blocks")
    record = check_proposed_record(body.record)
    if get_proposal(view, proposal_id) is not None:  # pragma: no cover - ids are tx hashes
        raise ProposalClosedError("a proposal with this id exists")
    proposal = ProposalRecord(
        proposal_id=proposal_id,
        proposer=proposer,
        record=body.record,
        expires_at_height=body.expires_at_height,
        proposed_height=height,
        approvals=(proposer,),
    )
    return _settle(view, council, proposal, record, height=height, apply_record=apply_record)


def approve(
    view: Overlay,
    council: Council,
    *,
    approver: bytes,
    body: Approve,
    height: int,
    apply_record: ApplyRecord,
) -> ProposalRecord:
    """Add a member's approval; the k-th applies the proposal's record in this block."""
    council.require_member(approver)
    proposal = get_proposal(view, body.proposal_id)
    if proposal is None:
        raise UnknownProposalError(f"no proposal {body.proposal_id.hex()}")
    status = ProposalStatus(proposal.status)
    if status is ProposalStatus.EXPIRED or (
        status is ProposalStatus.OPEN and height > proposal.expires_at_height
    ):
        raise ProposalExpiredError(
            f"proposal {body.proposal_id.hex()[:16]} expired at height {proposal.expires_at_height}"
        )
    if status is not ProposalStatus.OPEN:
        raise ProposalClosedError(
            f"proposal {body.proposal_id.hex()[:16]} is already {status.label}"
        )
    if approver in proposal.approvals:
        raise DoubleApprovalError(f"{approver.hex()[:16]}... already approved this proposal")
    record = check_proposed_record(proposal.record)
    approved = replace(proposal, approvals=(*proposal.approvals, approver))
    return _settle(view, council, approved, record, height=height, apply_record=apply_record)


def _settle(
    view: Overlay,
    council: Council,
    proposal: ProposalRecord,
    record: Record,
    *,
    height: int,
    apply_record: ApplyRecord,
) -> ProposalRecord:
    """Write the proposal; at k approvals apply its record (or record why it failed)."""
    open_key = _open_key(proposal.expires_at_height, proposal.proposal_id)
    # Only members in office count: the council may have changed since an approval (ADR 0043).
    if sum(1 for key in proposal.approvals if key in council.keys) < council.threshold:
        view.put(open_key, b"")
        view.put(proposal_key(proposal.proposal_id), proposal.encode())
        return proposal
    trial = Overlay(view)
    try:
        apply_record(trial, record)
    except GridchainError as exc:
        closed = replace(
            proposal, status=int(ProposalStatus.FAILED), closed_height=height, error=exc.code[:64]
        )
    else:
        trial.merge_into_parent()
        closed = replace(proposal, status=int(ProposalStatus.APPLIED), closed_height=height)
    if view.get(open_key) is not None:
        view.delete(open_key)
    view.put(proposal_key(proposal.proposal_id), closed.encode())
    return closed


# --- blocks ------------------------------------------------------------------------------------


def expire_due(view: Overlay, height: int) -> list[ProposalRecord]:
    """Close every open proposal whose last block is behind ``height``, oldest first."""
    due: list[bytes] = []
    for key, _ in view.scan(OPEN_PREFIX):
        expires_at = int.from_bytes(key[len(OPEN_PREFIX) : len(OPEN_PREFIX) + 8], "big")
        if expires_at >= height:
            break
        due.append(key)
    expired = []
    for key in due:
        proposal_id = key[len(OPEN_PREFIX) + 8 :]
        proposal = get_proposal(view, proposal_id)
        view.delete(key)
        if proposal is None:  # pragma: no cover - written together
            continue
        closed = replace(proposal, status=int(ProposalStatus.EXPIRED), closed_height=height)
        view.put(proposal_key(proposal_id), closed.encode())
        expired.append(closed)
    return expired
