"""The sealed channel of a link on its own: keys per direction, counters as nonces, no
plaintext mode (node.p2p.secure, ADR 0024).

Why: every guarantee of an encrypted link rests on these few rules - both ends derive the
same pair of keys only from the same two Hellos; a frame opens exactly once, in order, on the
link it was sealed for; a length is bounded before anything is read - so each one is pinned
here without sockets.
"""

from __future__ import annotations

import asyncio

import pytest

from gridchain.node.p2p.errors import FrameAuthError, HandshakeError
from gridchain.node.p2p.frames import Ping, TxGossip, encode_frame
from gridchain.node.p2p.secure import TAG_BYTES, Ephemeral, SecureChannel, hellos_hash
from gridchain.protocol.errors import MalformedError, OversizeError


def pair(
    hellos_a: bytes = b"hello-i", hellos_b: bytes = b"hello-r"
) -> tuple[SecureChannel, SecureChannel]:
    """An initiator's and a responder's channel of one handshake."""
    i, r = Ephemeral(), Ephemeral()
    hh = hellos_hash(hellos_a, hellos_b)
    initiator = SecureChannel.derive(i.shared_secret(r.public_bytes), hh, initiator=True)
    responder = SecureChannel.derive(r.shared_secret(i.public_bytes), hh, initiator=False)
    return initiator, responder


def split(sealed: bytes) -> tuple[bytes, bytes]:
    return sealed[:4], sealed[4:]


def test_each_direction_opens_what_the_other_sealed() -> None:
    initiator, responder = pair()
    for n in range(3):
        body = Ping(n).encode()
        assert responder.open(*split(initiator.seal(body))) == body
        assert initiator.open(*split(responder.seal(body))) == body


def test_the_two_directions_use_different_keys() -> None:
    initiator, _ = pair()
    # A frame reflected back to its sender does not open there.
    with pytest.raises(FrameAuthError):
        initiator.open(*split(initiator.seal(b"reflected")))


def test_the_ciphertext_hides_the_frame() -> None:
    initiator, _ = pair()
    body = TxGossip((b"canary-transaction-bytes" * 4,), relay=False).encode()
    sealed = initiator.seal(body)
    assert len(sealed) == 4 + len(body) + TAG_BYTES
    assert b"canary" not in sealed
    # The same frame sealed twice differs (the counter is the nonce).
    assert initiator.seal(body) != sealed


@pytest.mark.parametrize("where", [0, 3, 4, 10, -1])
def test_a_changed_byte_does_not_open(where: int) -> None:
    initiator, responder = pair()
    sealed = bytearray(initiator.seal(Ping(7).encode()))
    sealed[where] ^= 0x01
    with pytest.raises(FrameAuthError):
        responder.open(bytes(sealed[:4]), bytes(sealed[4:]))


def test_a_replayed_or_reordered_frame_does_not_open() -> None:
    initiator, responder = pair()
    first, second = initiator.seal(b"first"), initiator.seal(b"second")
    assert responder.open(*split(first)) == b"first"
    with pytest.raises(FrameAuthError):
        responder.open(*split(first))  # replayed
    assert responder.open(*split(second)) == b"second"  # a refusal does not move the counter
    initiator2, responder2 = pair()
    a, b = initiator2.seal(b"a"), initiator2.seal(b"b")
    with pytest.raises(FrameAuthError):
        responder2.open(*split(b))  # reordered: b before a
    assert responder2.open(*split(a)) == b"a"


def test_other_hellos_give_other_keys() -> None:
    """One changed byte in either Hello (or a handshake replayed into a new connection with
    fresh Hellos) gives keys under which nothing of the original connection opens."""
    i, r = Ephemeral(), Ephemeral()
    secret = i.shared_secret(r.public_bytes)
    sent = SecureChannel.derive(secret, hellos_hash(b"hello-i", b"hello-r"), initiator=True)
    tampered = SecureChannel.derive(secret, hellos_hash(b"hello-j", b"hello-r"), initiator=False)
    with pytest.raises(FrameAuthError):
        tampered.open(*split(sent.seal(b"x")))


def test_hellos_hash_is_unambiguous() -> None:
    assert hellos_hash(b"ab", b"c") != hellos_hash(b"a", b"bc")
    assert hellos_hash(b"a", b"b") != hellos_hash(b"b", b"a")


@pytest.mark.parametrize("key", [bytes(32), (1).to_bytes(32, "little")])
def test_a_small_order_ephemeral_key_is_refused(key: bytes) -> None:
    with pytest.raises(HandshakeError, match="ephemeral key"):
        Ephemeral().shared_secret(key)


def reader_with(data: bytes, *, eof: bool = True) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    if eof:
        reader.feed_eof()
    return reader


async def test_sealed_frames_are_read_decoded_and_bounded() -> None:
    initiator, responder = pair()
    stream = initiator.seal_encoded(encode_frame(Ping(1))) + initiator.seal_encoded(
        encode_frame(Ping(2))
    )
    reader = reader_with(stream)
    assert (await responder.read_frame(reader, 1024))[0] == Ping(1)
    assert (await responder.read_frame(reader, 1024))[0] == Ping(2)
    # A length beyond the bound is refused before the body arrives (the stream stays open).
    _, responder = pair()
    with pytest.raises(OversizeError):
        await responder.read_frame(
            reader_with((1024 + TAG_BYTES + 1).to_bytes(4, "big"), eof=False), 1024
        )
    with pytest.raises(MalformedError):
        await responder.read_frame(
            reader_with(TAG_BYTES.to_bytes(4, "big") + bytes(TAG_BYTES)), 1024
        )
