"""Wire frames of the peer network: a 4-byte big-endian length, then one canonical record.

Only the two Hellos of a handshake travel like that in the clear; every later frame is sealed
by the link's channel (node.p2p.secure, ADR 0024): the same length prefix, then the record's
ChaCha20-Poly1305 ciphertext.

The records use the same canonical encoding as every ledger object (protocol.encoding), with
tags 0x50-0x5f reserved for the network, so a frame is decoded as strictly as a transaction:
an unknown tag, a missing field or non-canonical bytes is a malformed frame, and a malformed
frame ends the link.  The length prefix is checked against a bound *before* the body is read,
so a peer cannot make a node allocate more than that bound: a small one during the handshake
(an unauthenticated stranger gets at most :data:`HANDSHAKE_MAX_FRAME_BYTES`), the node's
``max_frame_bytes`` afterwards.
"""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass
from typing import Annotated, Final, cast

from gridchain.node.p2p.errors import LinkClosedError
from gridchain.protocol.block import MAX_BLOCK_BYTES
from gridchain.protocol.encoding import (
    U32,
    U64,
    Bytes32,
    Bytes64,
    IntRange,
    Record,
    Size,
    decode_one_of,
    register,
)
from gridchain.protocol.errors import MalformedError, OversizeError
from gridchain.protocol.tx import MAX_TX_BYTES

#: Version of the frame set and handshake; a peer with another version is refused.  Version 1
#: was the plaintext protocol of ADR 0008: there is no plaintext mode any more (ADR 0024).
#: Version 3 (ADR 0047): TxGossip carries a batch of transactions and says whether to relay.
PROTOCOL_VERSION: Final = 3
#: The last version whose links were plaintext; a Hello of it is refused as a downgrade.
PLAINTEXT_VERSION: Final = 1
#: Bound on every frame before the peer is authenticated (Hello, HelloAuth, Refuse, Ping).
HANDSHAKE_MAX_FRAME_BYTES: Final = 1024
#: Smallest ``max_frame_bytes`` a node may use: a largest transaction must fit in a frame.
MIN_FRAME_BYTES: Final = 2 * MAX_TX_BYTES
#: Most blocks one GetBlocks may ask for (the responder may send fewer to fit a frame).
MAX_BLOCKS_PER_REQUEST: Final = 256
#: Bytes of a Blocks frame that are not block bytes (tag, version, id, array headers).
BLOCKS_FRAME_OVERHEAD: Final = 64 + 5 * MAX_BLOCKS_PER_REQUEST
#: Most transactions one TxGossip carries (the sender also keeps it within
#: :data:`MIN_FRAME_BYTES`, which every peer accepts).
MAX_GOSSIP_TXS: Final = 4096
#: Bytes of a TxGossip frame that are not transaction bytes: tag, array headers, the flag,
#: and up to 5 bytes of header per transaction (:func:`gossip_batches` counts those).
GOSSIP_FRAME_OVERHEAD: Final = 64
GOSSIP_TX_OVERHEAD: Final = 5
#: Most state entries one StateChunk carries (the responder also keeps it within a frame).
MAX_STATE_ENTRIES_PER_CHUNK: Final = 4096
#: Longest state key a GetState may name as its resume point.
MAX_STATE_KEY_BYTES: Final = 1024
#: Bytes of a StateChunk frame that are not key or value bytes (headers, 10 per entry).
STATE_CHUNK_OVERHEAD: Final = 64 + 10 * MAX_STATE_ENTRIES_PER_CHUNK

_LENGTH = struct.Struct(">I")
LENGTH_PREFIX_BYTES: Final = _LENGTH.size

Code = Annotated[str, Size(1, 64)]
Reason = Annotated[str, Size(0, 256)]
TxBytes = Annotated[bytes, Size(1, MAX_TX_BYTES)]
Payload = Annotated[bytes, Size(1, MAX_BLOCK_BYTES)]
BlockBytes = Annotated[bytes, Size(1, MAX_BLOCK_BYTES)]
StateKey = Annotated[bytes, Size(1, MAX_STATE_KEY_BYTES)]
StateValue = Annotated[bytes, Size(0, MAX_BLOCK_BYTES)]


@register(0x50)
@dataclass(frozen=True, slots=True)
class PlaintextHello(Record):
    """The Hello of protocol version 1 (plaintext links, ADR 0008).

    Still decoded, only so that a node of that version, or anyone asking for a plaintext
    link, is refused with a typed ``protocol_version`` instead of a decoding error.
    """

    version: U32
    chain_id: Bytes32
    public_key: Bytes32
    nonce: Bytes32
    max_frame_bytes: Annotated[int, IntRange(MIN_FRAME_BYTES, 2**32 - 1)]


@register(0x5B)
@dataclass(frozen=True, slots=True)
class Hello(Record):
    """First frame on every connection, sent by both sides at once, in the clear.

    ``ephemeral_key`` is the sender's one-use X25519 public key for this connection's
    encryption.  ``max_frame_bytes`` is the largest frame body the sender accepts, so a peer
    never sends it a frame it would have to treat as an attack (nodes may be configured
    differently).
    """

    version: U32
    chain_id: Bytes32
    public_key: Bytes32
    nonce: Bytes32
    max_frame_bytes: Annotated[int, IntRange(MIN_FRAME_BYTES, 2**32 - 1)]
    ephemeral_key: Bytes32


@register(0x51)
@dataclass(frozen=True, slots=True)
class HelloAuth(Record):
    """The sender's signature over the :class:`HandshakeTranscript` of this connection."""

    signature: Bytes64


@register(0x52)
@dataclass(frozen=True, slots=True)
class Refuse(Record):
    """Why the sender will not keep this link; sent just before it closes the connection."""

    code: Code
    message: Reason


@register(0x53)
@dataclass(frozen=True, slots=True)
class Ping(Record):
    """The sender's committed head height.  The first Ping also confirms the handshake."""

    height: U64


@register(0x54)
@dataclass(frozen=True, slots=True)
class TxGossip(Record):
    """Transactions the sender admitted or relays, in its pool order (ADR 0047).

    ``relay`` says the sender has no link to some validator, so a receiver passes what it
    admits on to its own peers; in a full mesh it is False and every transaction crosses one
    hop (each validator hears it from the validator that admitted it, not from every peer).
    """

    txs: Annotated[tuple[TxBytes, ...], Size(1, MAX_GOSSIP_TXS)]
    relay: bool


@register(0x55)
@dataclass(frozen=True, slots=True)
class ConsensusFrame(Record):
    """An engine message, encoded by the engine; the network never looks inside."""

    payload: Payload


@register(0x56)
@dataclass(frozen=True, slots=True)
class GetBlocks(Record):
    request_id: U64
    from_height: U64
    count: Annotated[int, IntRange(1, MAX_BLOCKS_PER_REQUEST)]


@register(0x57)
@dataclass(frozen=True, slots=True)
class Blocks(Record):
    """Consecutive CommittedBlock encodings from the requested height; empty if none."""

    request_id: U64
    blocks: Annotated[tuple[BlockBytes, ...], Size(0, MAX_BLOCKS_PER_REQUEST)]


@register(0x58)
@dataclass(frozen=True, slots=True)
class SubmitTx(Record):
    """A client transaction a gateway forwards; the validator answers with a TxVerdict."""

    request_id: U64
    tx: TxBytes


@register(0x59)
@dataclass(frozen=True, slots=True)
class TxVerdict(Record):
    """A validator's answer to SubmitTx: ``code`` is empty when it admitted the transaction,
    else the code of its typed refusal (the same code its HTTP API would answer with)."""

    request_id: U64
    code: Annotated[str, Size(0, 64)]
    message: Reason


@register(0x5A)
@dataclass(frozen=True, slots=True)
class NewBlock(Record):
    """A CommittedBlock (block + certificate) a validator pushes to its gateways as it commits."""

    block: BlockBytes


@register(0x5C)
@dataclass(frozen=True, slots=True)
class GetState(Record):
    """Ask for the live state entries after ``after`` (b"" for the first) of the snapshot at
    ``height``; height 0 asks the responder to pin a snapshot at its head (ADR 0039)."""

    request_id: U64
    height: U64
    after: Annotated[bytes, Size(0, MAX_STATE_KEY_BYTES)]


@register(0x5D)
@dataclass(frozen=True, slots=True)
class StateChunk(Record):
    """Consecutive live state entries (``keys[i]`` = ``values[i]``, keys ascending) of the
    snapshot at ``height``; ``last`` when none follow.  ``height`` 0: the responder holds no
    such snapshot (it expired, or it serves none): start again.  Nothing here is trusted: the
    asker checks the whole set against the state root of a certified block at ``height``."""

    request_id: U64
    height: U64
    keys: Annotated[tuple[StateKey, ...], Size(0, MAX_STATE_ENTRIES_PER_CHUNK)]
    values: Annotated[tuple[StateValue, ...], Size(0, MAX_STATE_ENTRIES_PER_CHUNK)]
    last: bool


@register(0x5F)
@dataclass(frozen=True, slots=True)
class HandshakeTranscript(Record):
    """What each side signs in the handshake.  Never sent; not a frame.

    It binds both keys, both nonces, the signer's role and the hash of both Hellos (which
    holds both ephemeral keys), so a signature is good for exactly one connection, one
    direction and one pair of encryption keys: it cannot be replayed on another connection
    (fresh nonces), reflected back to its author as the other side's proof (the role differs),
    or carried into a connection whose ephemeral keys a man in the middle chose.
    """

    signer_is_initiator: bool
    version: U32
    initiator_key: Bytes32
    responder_key: Bytes32
    initiator_nonce: Bytes32
    responder_nonce: Bytes32
    hellos_hash: Bytes32


Frame = (
    Hello
    | PlaintextHello
    | HelloAuth
    | Refuse
    | Ping
    | TxGossip
    | ConsensusFrame
    | GetBlocks
    | Blocks
    | SubmitTx
    | TxVerdict
    | NewBlock
    | GetState
    | StateChunk
)
FRAME_TYPES: Final[tuple[type[Record], ...]] = (
    Hello,
    PlaintextHello,
    HelloAuth,
    Refuse,
    Ping,
    TxGossip,
    ConsensusFrame,
    GetBlocks,
    Blocks,
    SubmitTx,
    TxVerdict,
    NewBlock,
    GetState,
    StateChunk,
)


def encode_frame(frame: Frame) -> bytes:
    """Length prefix + canonical record bytes."""
    body = frame.encode()
    return _LENGTH.pack(len(body)) + body


def gossip_batches(txs: list[bytes]) -> list[list[bytes]]:
    """``txs`` cut into consecutive runs that each fit one TxGossip of at most
    :data:`MIN_FRAME_BYTES` (any peer accepts that) and :data:`MAX_GOSSIP_TXS` transactions."""
    budget = MIN_FRAME_BYTES - GOSSIP_FRAME_OVERHEAD
    out: list[list[bytes]] = []
    run: list[bytes] = []
    size = 0
    for tx in txs:
        cost = len(tx) + GOSSIP_TX_OVERHEAD
        if run and (size + cost > budget or len(run) >= MAX_GOSSIP_TXS):
            out.append(run)
            run, size = [], 0
        run.append(tx)
        size += cost
    if run:
        out.append(run)
    return out


def decode_frame(body: bytes) -> Frame:
    """Decode one frame body (without its prefix) or raise a DecodeError."""
    # decode_one_of returns only the record types it was asked for (it refuses other tags).
    return cast(Frame, decode_one_of(body, FRAME_TYPES, max_bytes=len(body)))


def check_frame_length(length: int, max_bytes: int) -> None:
    """Refuse a declared body length before anything is allocated for it."""
    if length == 0:
        raise MalformedError("empty frame")
    if length > max_bytes:
        raise OversizeError(f"frame of {length} bytes exceeds the limit of {max_bytes}")


async def read_frame(reader: asyncio.StreamReader, max_bytes: int) -> tuple[Frame, int]:
    """Read one frame; returns it with its size on the wire.

    Raises LinkClosedError at end of stream (also in the middle of a frame) and a DecodeError
    (OversizeError, MalformedError, ...) for a frame that must end the link.
    """
    try:
        prefix = await reader.readexactly(LENGTH_PREFIX_BYTES)
    except asyncio.IncompleteReadError as exc:
        what = "connection closed" if not exc.partial else "connection closed mid-frame"
        raise LinkClosedError(what) from None
    (length,) = _LENGTH.unpack(prefix)
    check_frame_length(length, max_bytes)
    try:
        body = await reader.readexactly(length)
    except asyncio.IncompleteReadError:
        raise LinkClosedError("connection closed mid-frame") from None
    return decode_frame(body), LENGTH_PREFIX_BYTES + length
