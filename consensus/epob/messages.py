"""ePoB wire messages and persisted records (type tags 0x78-0x7f; 0x7c, its former copy of
Decision, is retired: the shared :class:`~consensus.kernel.messages.Decision` has tag 0x38).

Every signature is made with :data:`protocol.crypto.Domain.VOTE` over the canonical encoding of
a record whose type tag says what is signed:

* a :class:`Proposal` signs a :class:`ProposalClaim` ``(height, round, block_hash)`` (0x79);
* a :class:`Prevote` signs ``Vote(height, round, block_hash, PREPARE)`` (protocol.block, 0x23);
* a :class:`Precommit` signs ``Vote(height, round, block_hash, COMMIT)``, so q precommits are
  a :class:`~protocol.block.Certificate` that the runtime checks like any other engine's.

The tag is the first thing in the signed bytes, so a proposal signature can never be replayed
as a vote nor a prevote as a precommit.  A re-proposal (of a locked block, or of a block that
gathered a *polka*, q prevotes, in an earlier round) carries that polka as a certificate of
PREPARE votes, which any validator can check without having seen the votes.

Decoding is strict (protocol/encoding.py) and :func:`decode_message` adds the shape rules that
need no state, so garbage is refused with a typed :class:`~protocol.errors.DecodeError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, TypeVar, cast

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
from gridchain.protocol.encoding import U64, Bytes32, Record, decode, decode_one_of, register
from gridchain.protocol.errors import FieldValueError

R = TypeVar("R", bound=Record)

#: A proposal carries a whole block (and maybe a polka); votes are small.
MAX_MESSAGE_BYTES: Final = MAX_BLOCK_BYTES + 256 * 1024


@register(0x78)
@dataclass(frozen=True, slots=True)
class Proposal(SignedRecord):
    """``signature``'s owner offers ``block`` for its height in ``round``.

    ``polka`` is None for a block the signer built for this round (then the block names the
    signer as proposer and ``round`` as its round); for a re-proposal it is the q PREPARE
    signatures the block gathered in an earlier round.
    """

    round: U64
    block: Block
    polka: Certificate | None
    signature: VoteSignature

    def claim(self, block_hash: bytes) -> ProposalClaim:
        return ProposalClaim(self.block.height, self.round, block_hash)


@register(0x79)
@dataclass(frozen=True, slots=True)
class ProposalClaim(Record):
    """What a proposal signs; also the persisted guard against proposing twice in a round."""

    height: U64
    round: U64
    block_hash: Bytes32


@register(0x7A)
@dataclass(frozen=True, slots=True)
class Prevote(SignedRecord):
    vote: Vote
    signature: VoteSignature


@register(0x7B)
@dataclass(frozen=True, slots=True)
class Precommit(SignedRecord):
    vote: Vote
    signature: VoteSignature


@register(0x7D)
@dataclass(frozen=True, slots=True)
class LockRecord(Record):
    """Persisted before a precommit leaves: the polka that justified it and its block.

    It is both the guard against precommitting twice in one (height, round) and the lock a
    restarted validator must keep (and re-propose).
    """

    polka: Certificate
    block: Block


Message = Proposal | Prevote | Precommit | Decision
MESSAGE_TYPES: Final[tuple[type[Record], ...]] = (Proposal, Prevote, Precommit, Decision)


# --- signing ---------------------------------------------------------------------------------


def make_proposal(
    key: SigningKey, chain_id: bytes, round_: int, block: Block, polka: Certificate | None = None
) -> Proposal:
    claim = ProposalClaim(block.height, round_, block.hash())
    return Proposal(round_, block, polka, sign_payload(key, chain_id, claim))


def make_prevote(key: SigningKey, chain_id: bytes, vote: Vote) -> Prevote:
    return Prevote(vote, sign_payload(key, chain_id, vote))


def make_precommit(key: SigningKey, chain_id: bytes, vote: Vote) -> Precommit:
    return Precommit(vote, sign_payload(key, chain_id, vote))


# --- decoding --------------------------------------------------------------------------------


def check_polka(polka: Certificate, height: int, block_hash: bytes, before_round: int) -> None:
    """A polka must be PREPARE votes for this block at this height from an earlier round."""
    vote = polka.vote
    if vote.step != VoteStep.PREPARE:
        raise FieldValueError("a polka is a certificate of PREPARE votes")
    if vote.height != height or vote.block_hash != block_hash:
        raise FieldValueError("the polka is for another height or block")
    if vote.round >= before_round:
        raise FieldValueError("the polka is not from an earlier round")


def check_shape(message: Record) -> None:
    """Rules a message must meet whatever the engine's state (raise FieldValueError)."""
    if isinstance(message, Prevote) and message.vote.step != VoteStep.PREPARE:
        raise FieldValueError("Prevote: the vote's step must be PREPARE")
    if isinstance(message, Precommit) and message.vote.step != VoteStep.COMMIT:
        raise FieldValueError("Precommit: the vote's step must be COMMIT")
    if isinstance(message, Decision):
        check_decision(message)
    if isinstance(message, Proposal):
        header = message.block.header
        if header.round > message.round:
            raise FieldValueError("Proposal: the block was built for a later round")
        if message.polka is None:
            if header.round != message.round or header.proposer != message.signer:
                raise FieldValueError("Proposal: a fresh block is the signer's, for this round")
        else:
            check_polka(message.polka, header.height, header.hash(), message.round)


def decode_message(data: bytes) -> Message:
    """Decode one consensus message from a peer, or raise a DecodeError subclass."""
    message = decode_one_of(data, MESSAGE_TYPES, max_bytes=MAX_MESSAGE_BYTES)
    check_shape(message)
    return cast(Message, message)  # decode_one_of returns only the MESSAGE_TYPES


def decode_record(data: bytes, expected: type[R]) -> R:
    """Decode one of this engine's persisted records."""
    return decode(data, expected, max_bytes=MAX_MESSAGE_BYTES)
