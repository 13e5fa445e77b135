"""PBFT wire messages and persisted records (type tags 0x30-0x3f; 0x38 is the shared
:class:`~consensus.kernel.messages.Decision`).

Every vote-like signature is made with :data:`protocol.crypto.Domain.VOTE` over the canonical
encoding of a record whose type tag says what is signed: a :class:`~protocol.block.Vote`
(tag 0x23) for pre-prepares, prepares and commits, a :class:`ViewChangeClaim` for view changes
and a :class:`CheckpointClaim` for checkpoints.  Because the tag is the first thing in the
signed bytes, a signature made for one kind of statement can never be replayed as another.

The primary's pre-prepare signature *is* its prepare vote: a :class:`PrePrepare` carries the
primary's signature over ``Vote(height, view, block_hash, PREPARE)``, so a prepared certificate
is simply q prepare signatures over one vote (the primary's among them) and verifies with
:meth:`protocol.block.Certificate.verify`, like a commit certificate.

Decoding is strict (see protocol/encoding.py) and :func:`decode_message` adds the shape rules
that need no state (a Prepare carries a PREPARE vote, a NewView's view changes are for its view
and height...), so garbage is refused with a typed :class:`~protocol.errors.DecodeError` before
it reaches the engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Final, TypeVar, cast

from gridchain.consensus.kernel.messages import (
    Decision,
    SignedRecord,
    check_decision,
    sign_payload,
)
from gridchain.protocol.block import (
    MAX_BLOCK_BYTES,
    Block,
    Certificate,
    Vote,
    VoteSignature,
    VoteStep,
)
from gridchain.protocol.crypto import SigningKey
from gridchain.protocol.encoding import U64, Bytes32, Record, Size, decode, decode_one_of, register
from gridchain.protocol.errors import FieldValueError

R = TypeVar("R", bound=Record)

#: A pre-prepare or new view carries a whole block; the rest of a message is small.
MAX_MESSAGE_BYTES: Final = MAX_BLOCK_BYTES + 256 * 1024
#: More view changes than any validator set we accept can produce (Certificate allows 1024).
MAX_VIEW_CHANGES: Final = 1024


@register(0x30)
@dataclass(frozen=True, slots=True)
class PrePrepare(SignedRecord):
    """The primary of ``view`` proposes ``block`` at ``height``.

    ``signature`` is the primary's signature over :meth:`vote` and counts as its prepare.
    """

    view: U64
    height: U64
    block: Block
    signature: VoteSignature

    def vote(self) -> Vote:
        return Vote(self.height, self.view, self.block.hash(), int(VoteStep.PREPARE))


@register(0x31)
@dataclass(frozen=True, slots=True)
class Prepare(SignedRecord):
    vote: Vote
    signature: VoteSignature


@register(0x32)
@dataclass(frozen=True, slots=True)
class Commit(SignedRecord):
    vote: Vote
    signature: VoteSignature


@register(0x33)
@dataclass(frozen=True, slots=True)
class ViewChangeClaim(Record):
    """What a view change signs: the new view, the height, and the sender's prepared proof.

    The block that goes with the proof is *not* signed (the certificate names its hash), so a
    new view can carry the view changes without their blocks.
    """

    new_view: U64
    height: U64
    prepared: Certificate | None


@register(0x34)
@dataclass(frozen=True, slots=True)
class ViewChange(SignedRecord):
    """The sender leaves its view for ``new_view`` at ``height``.

    ``prepared`` is the prepared certificate of the block this replica sent a commit for at
    ``height`` (the one with the highest view), or None; ``block`` is that block, attached so
    the new primary can re-propose it.
    """

    new_view: U64
    height: U64
    prepared: Certificate | None
    block: Block | None
    signature: VoteSignature

    def claim(self) -> ViewChangeClaim:
        return ViewChangeClaim(self.new_view, self.height, self.prepared)

    def without_block(self) -> ViewChange:
        return ViewChange(self.new_view, self.height, self.prepared, None, self.signature)


@register(0x35)
@dataclass(frozen=True, slots=True)
class NewView(Record):
    """The primary of ``view`` proves q replicas left the old view, and proposes.

    It needs no signature of its own: the view changes are signed, and so is the pre-prepare,
    which must re-propose the block of the highest prepared certificate among them (or may be
    any block, or absent, when there is none).
    """

    view: U64
    height: U64
    view_changes: Annotated[tuple[ViewChange, ...], Size(1, MAX_VIEW_CHANGES)]
    pre_prepare: PrePrepare | None


@register(0x36)
@dataclass(frozen=True, slots=True)
class CheckpointClaim(Record):
    height: U64
    block_hash: Bytes32


@register(0x37)
@dataclass(frozen=True, slots=True)
class Checkpoint(SignedRecord):
    """The signer committed ``block_hash`` at ``height`` (a multiple of the interval)."""

    height: U64
    block_hash: Bytes32
    signature: VoteSignature

    def claim(self) -> CheckpointClaim:
        return CheckpointClaim(self.height, self.block_hash)


@register(0x39)
@dataclass(frozen=True, slots=True)
class ViewRecord(Record):
    """Persisted: the view this replica is in at ``height``; ``changing`` after a view change.

    After sending a view change for ``view`` a replica must never act in a lower view at that
    height again, even after a restart, or the view change it sent would be a lie.
    """

    height: U64
    view: U64
    changing: bool


@register(0x3A)
@dataclass(frozen=True, slots=True)
class PreparedRecord(Record):
    """Persisted before a commit vote leaves: the prepared certificate and its block.

    It is both the guard against committing twice at one (view, height) and the lock a view
    change must report, so a restarted replica can neither forget nor contradict it.
    """

    certificate: Certificate
    block: Block


Message = PrePrepare | Prepare | Commit | ViewChange | NewView | Checkpoint | Decision
MESSAGE_TYPES: Final[tuple[type[Record], ...]] = (
    PrePrepare,
    Prepare,
    Commit,
    ViewChange,
    NewView,
    Checkpoint,
    Decision,
)


# --- signing ---------------------------------------------------------------------------------


def make_pre_prepare(key: SigningKey, chain_id: bytes, view: int, block: Block) -> PrePrepare:
    vote = Vote(block.height, view, block.hash(), int(VoteStep.PREPARE))
    return PrePrepare(view, block.height, block, sign_payload(key, chain_id, vote))


def make_prepare(key: SigningKey, chain_id: bytes, vote: Vote) -> Prepare:
    return Prepare(vote, sign_payload(key, chain_id, vote))


def make_commit(key: SigningKey, chain_id: bytes, vote: Vote) -> Commit:
    return Commit(vote, sign_payload(key, chain_id, vote))


def make_view_change(
    key: SigningKey,
    chain_id: bytes,
    new_view: int,
    height: int,
    *,
    prepared: Certificate | None,
    block: Block | None,
) -> ViewChange:
    claim = ViewChangeClaim(new_view, height, prepared)
    return ViewChange(new_view, height, prepared, block, sign_payload(key, chain_id, claim))


def make_checkpoint(key: SigningKey, chain_id: bytes, height: int, block_hash: bytes) -> Checkpoint:
    claim = CheckpointClaim(height, block_hash)
    return Checkpoint(height, block_hash, sign_payload(key, chain_id, claim))


# --- decoding --------------------------------------------------------------------------------


def _check_prepared(cert: Certificate | None, height: int, new_view: int, where: str) -> None:
    if cert is None:
        return
    vote = cert.vote
    if vote.step != VoteStep.PREPARE:
        raise FieldValueError(f"{where}: a prepared certificate is for PREPARE votes")
    if vote.height != height:
        raise FieldValueError(f"{where}: prepared certificate for another height")
    if vote.round >= new_view:
        raise FieldValueError(f"{where}: prepared certificate not from an earlier view")


def check_shape(message: Record) -> None:
    """Rules a message must meet whatever the engine's state (raise FieldValueError)."""
    if isinstance(message, Prepare) and message.vote.step != VoteStep.PREPARE:
        raise FieldValueError("Prepare: the vote's step must be PREPARE")
    if isinstance(message, Commit) and message.vote.step != VoteStep.COMMIT:
        raise FieldValueError("Commit: the vote's step must be COMMIT")
    if isinstance(message, PrePrepare) and message.block.height != message.height:
        raise FieldValueError("PrePrepare: the block is for another height")
    if isinstance(message, ViewChange):
        _check_prepared(message.prepared, message.height, message.new_view, "ViewChange")
        if message.block is not None and message.prepared is None:
            raise FieldValueError("ViewChange: a block without a prepared certificate")
    if isinstance(message, NewView):
        for vc in message.view_changes:
            if vc.new_view != message.view or vc.height != message.height:
                raise FieldValueError("NewView: a view change for another view or height")
            if vc.block is not None:
                raise FieldValueError("NewView: view changes travel without their blocks")
            _check_prepared(vc.prepared, vc.height, vc.new_view, "NewView")
        pp = message.pre_prepare
        if pp is not None and (pp.view != message.view or pp.height != message.height):
            raise FieldValueError("NewView: the pre-prepare is for another view or height")
        if pp is not None and pp.block.height != pp.height:
            raise FieldValueError("NewView: the pre-prepare's block is for another height")
    if isinstance(message, Decision):
        check_decision(message)


def decode_message(data: bytes) -> Message:
    """Decode one consensus message from a peer, or raise a DecodeError subclass."""
    message = decode_one_of(data, MESSAGE_TYPES, max_bytes=MAX_MESSAGE_BYTES)
    check_shape(message)
    return cast(Message, message)  # decode_one_of returns only the MESSAGE_TYPES


def decode_record(data: bytes, expected: type[R]) -> R:
    """Decode one of this engine's persisted records."""
    return decode(data, expected, max_bytes=MAX_MESSAGE_BYTES)
