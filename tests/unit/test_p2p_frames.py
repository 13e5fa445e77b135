"""Frames of the peer network: exact bytes, strict decoding, and bounds checked before reading.

The integration tests drive these through real sockets; here each rule is pinned on its own so
a failure names the rule, and the byte vectors let another implementation check its framing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import msgpack
import pytest

from gridchain.node.config import ConfigError
from gridchain.node.p2p import FrameTooLargeError, PeerAddress, PeerNetwork
from gridchain.node.p2p.errors import LinkClosedError, UnknownPeerError
from gridchain.node.p2p.frames import (
    HANDSHAKE_MAX_FRAME_BYTES,
    MAX_BLOCKS_PER_REQUEST,
    MAX_GOSSIP_TXS,
    MIN_FRAME_BYTES,
    Blocks,
    ConsensusFrame,
    Frame,
    GetBlocks,
    HandshakeTranscript,
    Hello,
    HelloAuth,
    NewBlock,
    Ping,
    PlaintextHello,
    Refuse,
    SubmitTx,
    TxGossip,
    TxVerdict,
    decode_frame,
    encode_frame,
    gossip_batches,
    read_frame,
)
from gridchain.node.p2p.handshake import transcript_bytes
from gridchain.node.p2p.lru import SeenSet
from gridchain.protocol.crypto import SigningKey, sha256
from gridchain.protocol.errors import (
    FieldValueError,
    MalformedError,
    NonCanonicalError,
    OversizeError,
    UnknownTypeError,
)
from gridchain.protocol.tx import MAX_TX_BYTES
from tests.helpers import det_key

K1 = bytes(range(32))
K2 = bytes(range(32, 64))

ALL_FRAMES: list[Frame] = [
    Hello(2, sha256(b"chain"), K1, K2, MIN_FRAME_BYTES, K1),
    PlaintextHello(1, sha256(b"chain"), K1, K2, MIN_FRAME_BYTES),
    HelloAuth(bytes(64)),
    Refuse("unknown_peer", "not a validator"),
    Ping(123_456),
    TxGossip((b"\x01" * 100, b"\x02" * 80), relay=True),
    ConsensusFrame(b"engine-message"),
    GetBlocks(7, 10, MAX_BLOCKS_PER_REQUEST),
    Blocks(7, (b"a", b"bc")),
    Blocks(8, ()),
    SubmitTx(9, b"\x02" * 50),
    TxVerdict(9, "", ""),
    TxVerdict(10, "nonce_gap", "nonce 7 skips ahead"),
    NewBlock(b"committed block bytes"),
]


def reader_with(data: bytes, *, eof: bool = True) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    if eof:
        reader.feed_eof()
    return reader


def test_ping_frame_vector() -> None:
    # [tag 0x53, version 1, height 5] as a msgpack fixarray behind a big-endian length of 4.
    assert encode_frame(Ping(5)) == bytes.fromhex("00000004" + "93530105")


def test_refuse_frame_vector() -> None:
    # [0x52, 1, "banned", "x"]: strings as fixstr (0xa0 | length) in UTF-8.
    frame = encode_frame(Refuse("banned", "x"))
    assert frame == bytes.fromhex("0000000c" + "945201" + "a662616e6e6564" + "a178")


@pytest.mark.parametrize("frame", ALL_FRAMES, ids=lambda f: type(f).__name__)
async def test_every_frame_round_trips_through_a_stream(frame: Frame) -> None:
    data = encode_frame(frame)
    assert int.from_bytes(data[:4], "big") == len(data) - 4
    got, size = await read_frame(reader_with(data), 1024)
    assert got == frame
    assert size == len(data)


async def test_consecutive_frames_are_read_in_order() -> None:
    reader = reader_with(b"".join(encode_frame(f) for f in ALL_FRAMES))
    got = [(await read_frame(reader, 1024))[0] for _ in ALL_FRAMES]
    assert got == ALL_FRAMES
    with pytest.raises(LinkClosedError, match="connection closed"):
        await read_frame(reader, 1024)


async def test_oversize_length_is_refused_before_the_body_arrives() -> None:
    # Only the prefix is available and the stream stays open: a reader that waited for the
    # body would hang here instead of refusing.
    prefix = (HANDSHAKE_MAX_FRAME_BYTES + 1).to_bytes(4, "big")
    with pytest.raises(OversizeError):
        await read_frame(reader_with(prefix, eof=False), HANDSHAKE_MAX_FRAME_BYTES)


async def test_empty_frame_is_malformed() -> None:
    with pytest.raises(MalformedError):
        await read_frame(reader_with(b"\x00\x00\x00\x00"), 1024)


async def test_truncated_frame_is_a_closed_link() -> None:
    data = encode_frame(Ping(5))
    with pytest.raises(LinkClosedError, match="mid-frame"):
        await read_frame(reader_with(data[:-1]), 1024)
    with pytest.raises(LinkClosedError, match="mid-frame"):
        await read_frame(reader_with(data[:2]), 1024)


def test_garbage_is_malformed() -> None:
    with pytest.raises(MalformedError):
        decode_frame(b"\xc1garbage")


def test_the_transcript_is_never_a_frame() -> None:
    transcript = HandshakeTranscript(True, 2, K1, K2, K1, K2, K1).encode()
    with pytest.raises(UnknownTypeError):
        decode_frame(transcript)


def test_ledger_records_are_not_frames() -> None:
    with pytest.raises(UnknownTypeError):
        decode_frame(msgpack.packb([0x20, 1]))


def test_non_canonical_integer_is_refused() -> None:
    # Ping(5) with the height as a uint32 (0xce) instead of a positive fixint.
    body = bytes.fromhex("935301ce00000005")
    with pytest.raises(NonCanonicalError):
        decode_frame(body)


def test_trailing_bytes_are_refused() -> None:
    with pytest.raises(NonCanonicalError):
        decode_frame(Ping(5).encode() + b"\x00")


@pytest.mark.parametrize(
    "wire",
    [
        [0x54, 1, [b""], False],  # empty transaction
        [0x54, 1, [b"\x01", b"\x00" * (MAX_TX_BYTES + 1)], False],  # oversize transaction
        [0x54, 1, [], True],  # no transaction
        [0x54, 1, [b"\x01"] * (MAX_GOSSIP_TXS + 1), True],  # too many transactions
        [0x56, 1, 1, 1, 0],  # zero blocks asked
        [0x56, 1, 1, 1, MAX_BLOCKS_PER_REQUEST + 1],  # too many blocks asked
        [0x5B, 1, 2, b"\x00" * 31, K1, K2, MIN_FRAME_BYTES, K1],  # short chain id
        [0x5B, 1, 2, b"\x00" * 32, K1, K2, MIN_FRAME_BYTES - 1, K1],  # frame limit below a tx
        [0x5B, 1, 2, b"\x00" * 32, K1, K2, MIN_FRAME_BYTES, K1[:31]],  # short ephemeral key
        [0x58, 1, 1, b""],  # empty submitted transaction
        [0x59, 1, 1, "x" * 65, ""],  # refusal code too long
        [0x51, 1, b"\x00" * 63],  # short signature
    ],
)
def test_field_bounds_are_enforced(wire: list[object]) -> None:
    with pytest.raises(FieldValueError):
        decode_frame(msgpack.packb(wire, use_bin_type=True))


def test_gossip_batches_keep_the_order_and_fit_any_peers_frame_limit() -> None:
    """Every batch is a TxGossip a peer with the smallest allowed limit accepts, at most
    MAX_GOSSIP_TXS long, and the batches concatenate to the input in its order."""
    big = [bytes([i % 256]) * (MAX_TX_BYTES // 3) for i in range(20)]
    small = [i.to_bytes(4, "big") for i in range(MAX_GOSSIP_TXS + 10)]
    for txs in (big, small, [*small[:5], *big[:7], *small[5:9]]):
        batches = gossip_batches(txs)
        assert [tx for batch in batches for tx in batch] == txs
        for batch in batches:
            assert 1 <= len(batch) <= MAX_GOSSIP_TXS
            assert len(TxGossip(tuple(batch), relay=True).encode()) <= MIN_FRAME_BYTES
    assert len(gossip_batches(small)) == 2
    assert gossip_batches([]) == []


def test_encoder_refuses_what_the_decoder_would() -> None:
    with pytest.raises(FieldValueError):
        encode_frame(GetBlocks(1, 1, 0))


def test_transcript_binds_role_keys_nonces_and_the_hellos() -> None:
    n1, n2, other, hellos = sha256(b"n1"), sha256(b"n2"), sha256(b"x"), sha256(b"hellos")

    def t(
        *,
        role: bool = True,
        ik: bytes = K1,
        rk: bytes = K2,
        inonce: bytes = n1,
        rnonce: bytes = n2,
        hh: bytes = hellos,
        version: int = 2,
    ) -> bytes:
        return transcript_bytes(
            signer_is_initiator=role,
            initiator_key=ik,
            responder_key=rk,
            initiator_nonce=inonce,
            responder_nonce=rnonce,
            hellos=hh,
            version=version,
        )

    variants = [
        t(role=False),
        t(ik=K2, rk=K1),
        t(rnonce=other),
        t(inonce=other),
        t(hh=other),
        t(version=1),
    ]
    assert t() == t()
    assert len({t(), *variants}) == 1 + len(variants)


def test_seen_set_forgets_the_oldest() -> None:
    seen = SeenSet(3)
    assert [seen.add(k) for k in (b"a", b"b", b"c")] == [True, True, True]
    assert not seen.add(b"a")  # refreshes a: b is now the oldest
    assert seen.add(b"d")
    assert b"b" not in seen
    assert {b"a", b"c", b"d"} == {k for k in (b"a", b"b", b"c", b"d") if k in seen}
    assert len(seen) == 3


class _NullHandler:
    def on_consensus(self, sender: bytes, payload: bytes) -> None:
        pass

    def on_tx(self, sender: bytes, tx_bytes: bytes) -> None:
        pass

    def get_blocks(self, from_height: int, count: int) -> list[bytes]:
        return []

    def on_peer_height(self, sender: bytes, height: int) -> None:
        pass

    def on_client_tx(self, sender: bytes, tx_bytes: bytes) -> None:
        pass


def _network(
    peers: list[PeerAddress],
    max_frame_bytes: int = MIN_FRAME_BYTES,
    gateways: Sequence[SigningKey] = (),
) -> PeerNetwork:
    me, other = det_key("frames/me"), det_key("frames/other")
    return PeerNetwork(
        gateways=[g.public_key for g in gateways],
        key=me,
        chain_id=sha256(b"chain"),
        validators=[me.public_key, other.public_key],
        listen_host="127.0.0.1",
        listen_port=0,
        peers=peers,
        handler=_NullHandler(),
        max_frame_bytes=max_frame_bytes,
    )


def test_a_payload_larger_than_a_frame_is_refused_to_the_caller() -> None:
    net = _network([])
    net.broadcast_consensus(b"x" * 1000)  # fits: no peers, nothing happens
    with pytest.raises(FrameTooLargeError):
        net.broadcast_consensus(b"x" * MIN_FRAME_BYTES)
    with pytest.raises(FrameTooLargeError):
        net.send_consensus(K1, b"")
    with pytest.raises(FrameTooLargeError):
        net.gossip_tx(b"x" * (MAX_TX_BYTES + 1))


def test_the_frame_limit_must_fit_a_transaction() -> None:
    with pytest.raises(ConfigError, match="max_frame_bytes"):
        _network([], max_frame_bytes=MIN_FRAME_BYTES - 1)


def test_a_configured_peer_may_be_a_validator_to_be_but_never_a_gateway() -> None:
    """Since ADR 0035 a validator may list a key the chain admits later (it dials it; the
    link is refused until the key is a validator on chain); a gateway's key is no peer."""
    stranger = det_key("frames/stranger")
    net = _network([PeerAddress("s", stranger.public_key, "127.0.0.1", 1)])
    assert [p["public_key"] for p in net.peer_info()] == [stranger.public_key.hex()]
    gateway = det_key("frames/gateway")
    with pytest.raises(ConfigError, match=r"p2p\.peers\[0\]"):
        _network([PeerAddress("g", gateway.public_key, "127.0.0.1", 1)], gateways=[gateway])


async def test_links_follow_the_validator_set_the_runtime_names() -> None:
    """A key admitted on chain is accepted as a validator link; one removed is refused."""
    stranger = det_key("frames/stranger")
    other = det_key("frames/other").public_key
    net = _network([])
    with pytest.raises(UnknownPeerError):
        net._admit(stranger.public_key)
    net.set_validators([det_key("frames/me").public_key, other, stranger.public_key])
    net._admit(stranger.public_key)
    net.set_validators([other, det_key("frames/me").public_key])
    with pytest.raises(UnknownPeerError):
        net._admit(stranger.public_key)
    net._admit(other)

    me = det_key("frames/me")
    # Naming this node itself in a shared peer list is harmless and skipped.
    assert _network([PeerAddress("me", me.public_key, "127.0.0.1", 1)]).peer_info() == []
