"""PoB wire messages and persisted records (type tags 0x70-0x77).

Every signature is made with :data:`protocol.crypto.Domain.VOTE` over the canonical encoding of
a record whose type tag says what is signed, as in consensus/pbft/messages.py:

* an :class:`Announce` carries its signer's signature over an :class:`AnnounceClaim` (0x70):
  "in ``round`` my candidate at ``height`` on ``prev_hash`` is ``block_hash`` with
  ``benefit``; my committed head is at ``final_height``".  ``block_hash`` all zeros
  (:data:`NO_BLOCK`) announces no candidate: the announce is then only a vote for
  ``prev_hash`` (see engine.py: an announce doubles as the signer's vote for its tip);
* a :class:`BlockMessage` carries the whole block and the proposer's signature over
  ``Vote(height, round, block_hash, COMMIT)`` (protocol/block.py, tag 0x23): that one
  signature is the block's certificate once it is final.

Decoding is strict (protocol/encoding.py) and :func:`decode_message` adds the shape rules that
need no state (a block message is signed by its block's proposer, heights start at 1...), so
garbage is refused with a typed :class:`~protocol.errors.DecodeError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Final, cast

from gridchain.consensus.kernel.messages import SignedRecord, sign_payload
from gridchain.protocol.block import (
    MAX_BLOCK_BYTES,
    Block,
    Certificate,
    Vote,
    VoteSignature,
    VoteStep,
)
from gridchain.protocol.crypto import SigningKey
from gridchain.protocol.encoding import (
    I64,
    U64,
    Bytes32,
    Record,
    Size,
    decode,
    decode_one_of,
    register,
)
from gridchain.protocol.errors import FieldValueError

#: A block message carries a whole block; the rest of a message is small.
MAX_MESSAGE_BYTES: Final = MAX_BLOCK_BYTES + 64 * 1024
#: More validators than any set we accept (a certificate holds at most 1024 signatures).
MAX_VALIDATORS: Final = 1024
#: Pending blocks a lock record may carry (the notarized block and its unfinalised ancestors).
MAX_LOCK_BLOCKS: Final = 4096
#: ``Announce.block_hash`` when the signer has no candidate this round (a vote only).
NO_BLOCK: Final = b"\x00" * 32


@register(0x70)
@dataclass(frozen=True, slots=True)
class AnnounceClaim(Record):
    """What an announce signs."""

    height: U64
    round: U64
    prev_hash: Bytes32
    block_hash: Bytes32
    benefit: I64
    final_height: U64


@register(0x71)
@dataclass(frozen=True, slots=True)
class Announce(SignedRecord):
    """The signer's candidate for ``round`` (or none) and, through ``prev_hash``, its vote."""

    height: U64
    round: U64
    prev_hash: Bytes32
    block_hash: Bytes32
    benefit: I64
    final_height: U64
    signature: VoteSignature

    def claim(self) -> AnnounceClaim:
        return AnnounceClaim(
            self.height,
            self.round,
            self.prev_hash,
            self.block_hash,
            self.benefit,
            self.final_height,
        )

    @property
    def has_block(self) -> bool:
        return self.block_hash != NO_BLOCK


@register(0x72)
@dataclass(frozen=True, slots=True)
class BlockMessage(SignedRecord):
    """A whole block with its proposer's signature over ``Vote(h, round, hash, COMMIT)``."""

    block: Block
    signature: VoteSignature

    def vote(self) -> Vote:
        h = self.block.header
        return Vote(h.height, h.round, self.block.hash(), int(VoteStep.COMMIT))

    def certificate(self) -> Certificate:
        return Certificate(self.vote(), (self.signature,))


@register(0x73)
@dataclass(frozen=True, slots=True)
class BlockRequest(Record):
    """Please send me the block with this hash (a parent I am missing); answered with a
    :class:`BlockMessage` by a validator that holds it, ignored otherwise."""

    block_hash: Bytes32


@register(0x74)
@dataclass(frozen=True, slots=True)
class GuardRecord(Record):
    """Persisted before an announce (or the block it names) leaves the engine.

    ``round`` is the last round this validator announced in and ``block_hash`` what it
    announced (NO_BLOCK for a vote only): it never signs another announce or block for a
    round at or below it.  ``notarized_height`` is the height of the highest notarized block it
    had seen: it never votes for a block whose parent is lower (engine.py says why).
    """

    round: U64
    block_hash: Bytes32
    notarized_height: U64


@register(0x75)
@dataclass(frozen=True, slots=True)
class LockRecord(Record):
    """Persisted when the guard's ``notarized_height`` rises: the notarized block at that
    height with its pending ancestors (oldest first) and the announces that notarized it.

    Without it a restarted validator could neither vote (its rule needs a notarized parent at
    least that high) nor show others why they may: after every validator restarted at once,
    nobody would remember a notarized block high enough and the chain would stop.
    """

    chain: Annotated[tuple[BlockMessage, ...], Size(0, MAX_LOCK_BLOCKS)]
    votes: Annotated[tuple[Announce, ...], Size(0, MAX_VALIDATORS)]


Message = Announce | BlockMessage | BlockRequest
MESSAGE_TYPES: Final[tuple[type[Record], ...]] = (Announce, BlockMessage, BlockRequest)


# --- signing ---------------------------------------------------------------------------------


def make_announce(
    key: SigningKey,
    chain_id: bytes,
    *,
    height: int,
    round_: int,
    prev_hash: bytes,
    block_hash: bytes,
    benefit: int,
    final_height: int,
) -> Announce:
    claim = AnnounceClaim(height, round_, prev_hash, block_hash, benefit, final_height)
    return Announce(
        height,
        round_,
        prev_hash,
        block_hash,
        benefit,
        final_height,
        sign_payload(key, chain_id, claim),
    )


def make_block_message(key: SigningKey, chain_id: bytes, block: Block) -> BlockMessage:
    h = block.header
    vote = Vote(h.height, h.round, block.hash(), int(VoteStep.COMMIT))
    return BlockMessage(block, sign_payload(key, chain_id, vote))


# --- decoding --------------------------------------------------------------------------------


def check_shape(message: Record) -> None:
    """Rules a message must meet whatever the engine's state (raise FieldValueError)."""
    if isinstance(message, Announce):
        if message.height < 1:
            raise FieldValueError("Announce: heights start at 1")
        if not message.has_block and message.benefit != 0:
            raise FieldValueError("Announce: no candidate but a benefit")
    elif isinstance(message, BlockMessage):
        if message.block.height < 1:
            raise FieldValueError("BlockMessage: heights start at 1")
        if message.signature.validator != message.block.header.proposer:
            raise FieldValueError("BlockMessage: not signed by the block's proposer")


def decode_message(data: bytes) -> Message:
    """Decode one consensus message from a peer, or raise a DecodeError subclass."""
    message = decode_one_of(data, MESSAGE_TYPES, max_bytes=MAX_MESSAGE_BYTES)
    check_shape(message)
    return cast(Message, message)  # decode_one_of returns only the MESSAGE_TYPES


def decode_guard(data: bytes) -> GuardRecord:
    return decode(data, GuardRecord, max_bytes=1024)


def decode_lock(data: bytes) -> LockRecord:
    return decode(data, LockRecord, max_bytes=2**40)
