"""The council in office: genesis's until the council itself replaces it (ADR 0043).

Why chain state: members leave the community, keys are lost, a community grows and wants a
higher threshold; with the council fixed in genesis.json none of that could change without
a new chain.  A council proposal carrying :class:`~gridchain.protocol.governance.UpdateCouncil`
replaces the whole council in the block that applies it; every Propose and Approve after it
is checked against the new members, and an open proposal counts only the approvals of members
in office (a removed member's approval stays in the record, for the audit trail, but no longer
counts).

The council is stored only once it changes (``meta:council``, under the state root), so a
chain that never changes it keeps the genesis state and state root it always had.

Refused, each with a typed error and no write: an empty council, a key named twice, a
threshold of 0 or above the number of members, the governance key as a member (it is the
authority records apply under, never a member of a council, as genesis already refuses), and
a key gridchain never registers (small-order etc.).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from gridchain.market.errors import ApplicationError
from gridchain.market.governance import Council
from gridchain.market.keys import require_registrable_key
from gridchain.market.state import Overlay, StateReader
from gridchain.protocol.encoding import U8, U64, Bytes32, Record, Size, decode, register
from gridchain.protocol.governance import MAX_COUNCIL_MEMBERS, UpdateCouncil

COUNCIL_KEY = b"meta:council"


class CouncilChangeError(ApplicationError):
    """An UpdateCouncil the chain refuses (each case has its own subclass)."""

    code = "council_change"


class EmptyCouncilError(CouncilChangeError):
    code = "empty_council"


class DuplicateCouncilMemberError(CouncilChangeError):
    code = "duplicate_council_member"


class CouncilThresholdError(CouncilChangeError):
    """A threshold of 0, or above the number of members (no proposal could ever apply)."""

    code = "invalid_council_threshold"


class CouncilRoleConflictError(CouncilChangeError):
    """The governance key named as a member."""

    code = "council_role_conflict"


@register(0x8A)
@dataclass(frozen=True, slots=True)
class CouncilRecord(Record):
    """The council in office since block ``since_height``, members in the order named."""

    members: Annotated[tuple[Bytes32, ...], Size(1, MAX_COUNCIL_MEMBERS)]
    threshold: U8
    since_height: U64


def council_record(state: StateReader) -> CouncilRecord | None:
    """The council the chain last put in office (None: still genesis's)."""
    raw = state.get(COUNCIL_KEY)
    return None if raw is None else decode(raw, CouncilRecord)


def council_in_office(state: StateReader, genesis_council: Council) -> Council:
    record = council_record(state)
    if record is None:
        return genesis_council
    return Council.of(record.members, record.threshold)


def council_after(body: UpdateCouncil, governance_key: bytes) -> Council:
    """The council ``body`` names, or the typed refusal: a pure function, so a gateway that
    follows blocks without their state (node/follower.py) tracks the council the same way."""
    if not body.members:
        raise EmptyCouncilError("a council has at least one member")
    if len(set(body.members)) != len(body.members):
        raise DuplicateCouncilMemberError("a key is named twice in the council")
    if not 1 <= body.threshold <= len(body.members):
        raise CouncilThresholdError(
            f"threshold {body.threshold} must be 1 to the number of members ({len(body.members)})"
        )
    if governance_key in body.members:
        raise CouncilRoleConflictError("the governance key is never a council member")
    for key in body.members:
        require_registrable_key(key, what="UpdateCouncil.members")
    return Council.of(body.members, body.threshold)


def apply_council_update(
    view: Overlay, body: UpdateCouncil, governance_key: bytes, height: int
) -> None:
    """Put the council ``body`` names in office from the next transaction on."""
    council_after(body, governance_key)
    view.put(COUNCIL_KEY, CouncilRecord(body.members, body.threshold, height).encode())
