"""Sealed reads: a signed request for an account's private data, answered sealed to a key in it.

The owner of an account signs a :class:`ReadQuery` naming the account, what to read, a fresh
random request id, a time it is valid until and a fresh X25519 reply key; the node checks the
signature, that the signer owns the account, the time window and that the id is new, and
answers with the result's JSON sealed (HPKE, protocol/hpke.py) to the reply key.  A gateway
relaying the exchange sees the request (which names what is asked, not the answer) and
ciphertext; it cannot replay the request (the id is remembered until it expires) nor read the
reply (only the holder of the reply key can).  The reply's HPKE ``info`` binds it to this
chain and to the exact signed request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from gridchain.protocol.address import address_of
from gridchain.protocol.crypto import Domain, SigningKey, require_valid, sha256
from gridchain.protocol.encoding import (
    U8,
    U64,
    Bytes20,
    Bytes32,
    Bytes64,
    LabelledEnum,
    Record,
    Size,
    decode,
    register,
)
from gridchain.protocol.errors import GridchainError
from gridchain.protocol.hpke import check_x25519_public_key, open_sealed, public_bytes, seal

#: The largest encoded signed request a node reads.
MAX_READ_BYTES = 1024
#: How far ahead of the node's clock a request may be valid: a short window bounds how long a
#: node must remember request ids, and how long a captured request could be replayed elsewhere.
MAX_READ_WINDOW_MS = 120_000
_REPLY_DOMAIN = b"gridchain/sealed-reply\x00"


class ReadKind(LabelledEnum):
    """The private data of an account (docs/sealed.md): what a sealed read may ask for."""

    ORDERS = 0
    TRADES = 1
    RECEIPTS = 2
    READINGS = 3
    SEALED_OUTCOMES = 4


READ_KIND_BY_LABEL: dict[str, ReadKind] = {k.label: k for k in ReadKind}
READ_KIND_BY_VALUE: dict[int, ReadKind] = {int(k): k for k in ReadKind}


@register(0x05)
@dataclass(frozen=True, slots=True)
class ReadQuery(Record):
    """What the owner signs.  ``meter_id`` names the meter for READINGS (empty otherwise)."""

    account: Bytes20
    kind: U8
    meter_id: Annotated[str, Size(0, 64)]
    request_id: Annotated[bytes, Size(16, 16)]
    valid_until_ms: U64
    reply_key: Bytes32


@register(0x06)
@dataclass(frozen=True, slots=True)
class SignedRead(Record):
    signer: Bytes32
    query: ReadQuery
    signature: Bytes64

    def verify_signature(self, chain_id: bytes) -> None:
        """Raise SignatureError unless ``signer`` signed this query for this chain."""
        require_valid(
            self.signer,
            self.signature,
            Domain.SEALED_READ,
            chain_id,
            self.query.encode(),
            what="sealed read request",
        )

    def request_hash(self) -> bytes:
        return sha256(self.encode())


class ReadRefusedError(GridchainError):
    code = "read_refused"


class NotOwnerReadError(ReadRefusedError):
    """The request is signed by someone other than the owner of the account it reads."""

    code = "not_owner"
    http_status = 403


class ReadExpiredError(ReadRefusedError):
    """The request's validity ended before it reached the node."""

    code = "read_expired"


class ReadWindowError(ReadRefusedError):
    """The request is valid for longer than a node remembers request ids."""

    code = "read_window"


class ReadReplayedError(ReadRefusedError):
    """A request id this node already answered while it is still valid."""

    code = "read_replayed"
    http_status = 409


def sign_read(key: SigningKey, chain_id: bytes, query: ReadQuery) -> SignedRead:
    signature = key.sign(Domain.SEALED_READ, chain_id, query.encode())
    return SignedRead(key.public_key, query, signature)


def decode_read(data: bytes) -> SignedRead:
    return decode(data, SignedRead, max_bytes=MAX_READ_BYTES)


def check_read(request: SignedRead, chain_id: bytes, now_ms: int) -> None:
    """Everything about a request but its freshness (the node's replay cache checks that)."""
    request.verify_signature(chain_id)
    if address_of(request.signer) != request.query.account:
        raise NotOwnerReadError("a sealed read is signed by the owner of the account it reads")
    if request.query.kind not in READ_KIND_BY_VALUE:
        raise ReadRefusedError(f"unknown read kind {request.query.kind}")
    until = request.query.valid_until_ms
    if until < now_ms:
        raise ReadExpiredError(f"the request expired {now_ms - until} ms ago")
    if until - now_ms > MAX_READ_WINDOW_MS:
        raise ReadWindowError(f"a request is valid for at most {MAX_READ_WINDOW_MS} ms")
    check_x25519_public_key(request.query.reply_key, what="reply key")


def reply_info(chain_id: bytes, request: SignedRead) -> bytes:
    return _REPLY_DOMAIN + chain_id + request.request_hash()


def seal_reply(chain_id: bytes, request: SignedRead, answer: bytes) -> bytes:
    """``answer`` sealed to the request's reply key (HPKE, a fresh ephemeral key)."""
    key = check_x25519_public_key(request.query.reply_key, what="reply key")
    return seal(answer, key, reply_info(chain_id, request))


def open_reply(
    chain_id: bytes, request: SignedRead, reply_private: X25519PrivateKey, sealed: bytes
) -> bytes:
    """The answer, or OpenError if ``sealed`` is not the reply to this request for this key."""
    if public_bytes(reply_private) != request.query.reply_key:
        raise GridchainError("this is not the request's reply key")
    return open_sealed(sealed, reply_private, reply_info(chain_id, request))
