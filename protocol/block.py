"""Blocks, votes and commit certificates.

A block's hash is SHA-256 of its canonical header.  The header commits to the transactions
(``tx_root``), to the optional C&D schedule section (``schedule_root``) and to the state root
*after executing this block* (see docs/adr/0003-state-root.md for why this departs from the
design's "state root after the previous block").

A certificate is the set of validator signatures over one :class:`Vote`; it is stored beside the
block and lets a node that is behind check a block it fetched without trusting the peer.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection, Container
from dataclasses import dataclass
from typing import Annotated

from gridchain.protocol.crypto import Domain, SigningKey, sha256, verify
from gridchain.protocol.encoding import (
    I64,
    U8,
    U64,
    Bytes32,
    Bytes64,
    Record,
    Size,
    decode,
    register,
)
from gridchain.protocol.errors import SignatureError, ValidationError
from gridchain.protocol.merkle import merkle_root
from gridchain.protocol.tx import Transaction
from gridchain.protocol.tx_signatures import TxSignatureCache

MAX_BLOCK_TXS = 10_000
MAX_BLOCK_BYTES = 8 * 1024 * 1024


@register(0x20)
@dataclass(frozen=True, slots=True)
class BlockHeader(Record):
    chain_id: Bytes32
    height: U64
    prev_hash: Bytes32
    timestamp_ms: U64
    proposer: Bytes32
    round: U64
    benefit: I64
    tx_root: Bytes32
    schedule_root: Bytes32
    state_root: Bytes32

    def hash(self) -> bytes:
        return sha256(self.encode())


@register(0x21)
@dataclass(frozen=True, slots=True)
class ScheduleEntry(Record):
    """The integer rate for one C&D request in the next interval (negative = discharge)."""

    request_id: Bytes32
    rate_w: I64


@register(0x22)
@dataclass(frozen=True, slots=True)
class Block(Record):
    header: BlockHeader
    txs: Annotated[tuple[Transaction, ...], Size(0, MAX_BLOCK_TXS)]
    schedule: Annotated[tuple[ScheduleEntry, ...], Size(0, MAX_BLOCK_TXS)] = ()

    def hash(self) -> bytes:
        return self.header.hash()

    @property
    def height(self) -> int:
        return self.header.height


class VoteStep(enum.IntEnum):
    PREPARE = 1
    COMMIT = 2


@register(0x23)
@dataclass(frozen=True, slots=True)
class Vote(Record):
    """What a validator signs to say it accepts ``block_hash`` at ``height`` in ``round``."""

    height: U64
    round: U64
    block_hash: Bytes32
    step: U8

    def sign(self, key: SigningKey, chain_id: bytes) -> VoteSignature:
        return VoteSignature(key.public_key, key.sign(Domain.VOTE, chain_id, self.encode()))


@register(0x24)
@dataclass(frozen=True, slots=True)
class VoteSignature(Record):
    validator: Bytes32
    signature: Bytes64


@register(0x25)
@dataclass(frozen=True, slots=True)
class Certificate(Record):
    vote: Vote
    signatures: Annotated[tuple[VoteSignature, ...], Size(1, 1024)]

    def verify(
        self,
        chain_id: bytes,
        validators: Collection[bytes],
        quorum: int,
        verifier: Callable[[bytes, bytes, Domain, bytes, bytes], bool] | None = None,
    ) -> None:
        """Raise unless at least ``quorum`` distinct members of ``validators`` signed the vote.

        ``verifier`` replaces protocol.crypto.verify (a validator passes the one its engine
        checked the votes with, which remembers them: ADR 0047)."""
        check = verify if verifier is None else verifier
        payload = self.vote.encode()
        seen: set[bytes] = set()
        for sig in self.signatures:
            if sig.validator not in validators:
                raise SignatureError(f"certificate signed by non-validator {sig.validator.hex()}")
            if sig.validator in seen:
                raise SignatureError(f"certificate signed twice by {sig.validator.hex()}")
            if not check(sig.validator, sig.signature, Domain.VOTE, chain_id, payload):
                raise SignatureError(f"certificate signature of {sig.validator.hex()} is invalid")
            seen.add(sig.validator)
        if len(seen) < quorum:
            raise SignatureError(f"certificate has {len(seen)} signatures, {quorum} needed")


@register(0x26)
@dataclass(frozen=True, slots=True)
class CommittedBlock(Record):
    """A block with the certificate that finalised it: what the store keeps and peers fetch."""

    block: Block
    certificate: Certificate


def tx_root(txs: tuple[Transaction, ...]) -> bytes:
    return merkle_root([tx.hash() for tx in txs])


def schedule_root(schedule: tuple[ScheduleEntry, ...]) -> bytes:
    return merkle_root([e.encode() for e in schedule])


def check_block_structure(
    block: Block,
    chain_id: bytes,
    already_verified: Container[bytes] = (),
    signatures: TxSignatureCache | None = None,
) -> None:
    """Rules that need no ledger state: chain, roots, duplicates, signatures.

    ``already_verified`` holds hashes of transactions whose signatures this node checked when
    it admitted them (its mempool); ``signatures`` is the node's memory of every transaction
    signature it verified (admission, gossip, earlier blocks), which it also extends.  Either
    way, re-verifying would double a validator's main cost.
    """
    h = block.header
    if h.chain_id != chain_id:
        raise ValidationError("block is for another chain")
    if h.height < 1:
        raise ValidationError("block height starts at 1")
    if tx_root(block.txs) != h.tx_root:
        raise ValidationError("tx_root does not match the block's transactions")
    if schedule_root(block.schedule) != h.schedule_root:
        raise ValidationError("schedule_root does not match the block's schedule")
    hashes = [tx.hash() for tx in block.txs]
    if len(set(hashes)) != len(block.txs):
        raise ValidationError("block contains a transaction twice")
    unchecked = [
        tx for tx, tx_hash in zip(block.txs, hashes, strict=True) if tx_hash not in already_verified
    ]
    if signatures is not None:
        signatures.require_all(unchecked)
        return
    for tx in unchecked:
        tx.verify_signature(chain_id)


def decode_committed(data: bytes) -> CommittedBlock:
    return decode(data, CommittedBlock, max_bytes=MAX_BLOCK_BYTES)
