"""The consensus messages and helpers every engine shares (type tag 0x38).

:class:`Decision` is the one "here is the commit certificate of a height you are still working
on" message: PBFT and ePoB send it to a validator that is behind, so it can commit or catch up.
It keeps PBFT's tag 0x38, which it had before the engines shared it; ePoB's former copy (tag
0x7C) is retired and the tag is not reused (docs/spec/encoding.md).  A chain runs one engine,
so one type serves every engine without ambiguity.

:func:`sign_payload` is the one way engines sign: Domain.VOTE over the canonical bytes of a
record whose type tag says what is signed, so a signature made for one kind of statement can
never be replayed as another.
"""

from __future__ import annotations

from dataclasses import dataclass

from gridchain.protocol.block import Certificate, VoteSignature, VoteStep
from gridchain.protocol.crypto import Domain, SigningKey
from gridchain.protocol.encoding import Record, register
from gridchain.protocol.errors import FieldValueError


class SignedRecord(Record):
    """A message that carries its signer's signature, so whoever relays it, ``signer`` is
    who it is from (checked against the signature and the validator set before it counts).

    Not a dataclass itself: each message declares ``signature`` among its own fields, in its
    own place, so the wire layout stays the message's.
    """

    signature: VoteSignature

    @property
    def signer(self) -> bytes:
        return self.signature.validator


@register(0x38)
@dataclass(frozen=True, slots=True)
class Decision(Record):
    """A commit certificate sent to a validator that is behind, so it can commit or catch up."""

    certificate: Certificate


def check_decision(decision: Decision) -> None:
    """A decision carries a certificate of COMMIT votes (raise FieldValueError)."""
    if decision.certificate.vote.step != VoteStep.COMMIT:
        raise FieldValueError("Decision: the certificate must be for COMMIT votes")


def sign_payload(key: SigningKey, chain_id: bytes, payload: Record) -> VoteSignature:
    """The one way engines sign: Domain.VOTE over the payload record's canonical bytes."""
    return VoteSignature(key.public_key, key.sign(Domain.VOTE, chain_id, payload.encode()))
