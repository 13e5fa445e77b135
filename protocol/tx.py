"""Transactions: a sender's public key, a nonce, a typed body and an Ed25519 signature.

The signature covers ``sign_bytes(Domain.TX, chain_id, encode(TxPayload(...)))``, so a
transaction is bound to one chain.  The transaction hash is SHA-256 of the whole signed
encoding; Ed25519 signatures are deterministic, so one payload has one hash.

Body type tags 0x10-0x1f are reserved for transaction kinds (0x20-0x2f are blocks and
consensus records); see docs/spec/encoding.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Annotated

from protocol.address import address_of
from protocol.crypto import Domain, SigningKey, require_valid, sha256
from protocol.encoding import (
    U64,
    Bytes20,
    Bytes32,
    Bytes64,
    Record,
    Size,
    decode,
    encode,
    register,
)

#: The largest encoded transaction a node accepts (a MeterReadings batch is the largest kind).
MAX_TX_BYTES = 64 * 1024

Memo = Annotated[str, Size(0, 140)]
Name = Annotated[str, Size(1, 64)]


@register(0x10)
@dataclass(frozen=True, slots=True)
class Transfer(Record):
    """Move ``amount_mc`` milli-credits from the sender to ``to``."""

    to: Bytes20
    amount_mc: U64
    memo: Memo = ""


@register(0x11)
@dataclass(frozen=True, slots=True)
class RegisterParticipant(Record):
    """Admit a key to the chain (governance only): the chain is permissioned."""

    public_key: Bytes32
    name: Name


@register(0x12)
@dataclass(frozen=True, slots=True)
class Mint(Record):
    """Create money (governance only); with :class:`Burn` the only way the supply changes."""

    to: Bytes20
    amount_mc: U64


@register(0x13)
@dataclass(frozen=True, slots=True)
class Burn(Record):
    """Destroy money held by ``account`` (governance only)."""

    account: Bytes20
    amount_mc: U64


TxBody = Transfer | RegisterParticipant | Mint | Burn
TX_BODY_TYPES: tuple[type[Record], ...] = (Transfer, RegisterParticipant, Mint, Burn)


@register(0x01)
@dataclass(frozen=True, slots=True)
class TxPayload(Record):
    """What the sender signs: everything in a transaction but the signature."""

    sender: Bytes32
    nonce: U64
    body: TxBody


@register(0x02)
@dataclass(frozen=True)
class Transaction(Record):
    """A signed transaction.

    Not slotted, so that its canonical bytes and hash are computed once per object: a
    validator needs them at admission, in gossip, in the block's tx root, in the tx index and
    at commit.  The cached values are not dataclass fields, so equality and encoding ignore them.
    """

    sender: Bytes32
    nonce: U64
    body: TxBody
    signature: Bytes64

    @property
    def payload(self) -> TxPayload:
        return TxPayload(self.sender, self.nonce, self.body)

    @property
    def kind(self) -> str:
        return type(self.body).__name__

    @property
    def sender_address(self) -> bytes:
        return address_of(self.sender)

    @cached_property
    def encoded(self) -> bytes:
        return encode(self)

    def encode(self) -> bytes:
        return self.encoded

    @cached_property
    def tx_hash(self) -> bytes:
        return sha256(self.encoded)

    def hash(self) -> bytes:
        return self.tx_hash

    def verify_signature(self, chain_id: bytes) -> None:
        """Raise SignatureError unless the sender signed this payload for this chain."""
        require_valid(
            self.sender,
            self.signature,
            Domain.TX,
            chain_id,
            self.payload.encode(),
            what=f"transaction from {self.sender.hex()[:16]}",
        )


def sign_tx(key: SigningKey, chain_id: bytes, nonce: int, body: TxBody) -> Transaction:
    payload = TxPayload(key.public_key, nonce, body)
    signature = key.sign(Domain.TX, chain_id, payload.encode())
    return Transaction(key.public_key, nonce, body, signature)


def decode_tx(data: bytes) -> Transaction:
    tx = decode(data, Transaction, max_bytes=MAX_TX_BYTES)
    # decode() proved these bytes are the canonical encoding: keep them instead of re-encoding.
    vars(tx).setdefault("encoded", bytes(data))
    return tx
