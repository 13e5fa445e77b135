"""Attacks on the encrypted link over real sockets: tampering, replay, downgrade, bad frames.

Why: ADR 0024 promises that a link is encrypted and mutually authenticated with forward
secrecy, and that what an attacker on the path can do is end it, never read it, change it,
replay it into a new connection or talk a node down to plaintext.  Each attack is made here
against a real :class:`PeerNetwork` listening on loopback, through a recording proxy where it
needs to be on the path, and each must be refused with its typed reason - counted by the
node's observer (its Prometheus counter) and, where the peer can still read it, told to it.
"""

from __future__ import annotations

import asyncio
import secrets

import pytest

from gridchain.node.p2p import (
    HandshakeAuthError,
    LinkClosedError,
    PeerRefusedError,
    ProtocolVersionError,
)
from gridchain.node.p2p.frames import (
    HANDSHAKE_MAX_FRAME_BYTES,
    MIN_FRAME_BYTES,
    PLAINTEXT_VERSION,
    PROTOCOL_VERSION,
    Hello,
    Ping,
    PlaintextHello,
    Refuse,
    encode_frame,
    read_frame,
)
from gridchain.node.p2p.secure import Ephemeral
from tests.integration.test_p2p import (
    CHAIN,
    FAST,
    KEYS,
    STRANGER,
    authenticated_as,
    closed_by_peer,
    dial_handshake,
    make_node,
    running,
    wait_until,
)
from tests.integration.test_p2p_admission import CountingObserver
from tests.procs import free_test_port as free_port
from tests.proxy import DOWNSTREAM, UPSTREAM, flip_byte_at, recording_proxy

pytestmark = pytest.mark.timeout(60)

#: dial_handshake's frame limit: it decides how many bytes the dialer's Hello takes.
DIAL_MAX_FRAME = 8 * 1024 * 1024


def hello_size() -> int:
    """Bytes of a dialer's Hello frame on the wire (every field but the keys is fixed)."""
    sample = Hello(2, CHAIN, bytes(32), bytes(32), DIAL_MAX_FRAME, bytes(32))
    return len(encode_frame(sample))


@pytest.mark.parametrize(
    ("what", "direction", "position", "dialer_sees"),
    [
        # A changed Hello gives the two ends different keys: each refuses the other's HelloAuth.
        ("the dialer's ephemeral key", UPSTREAM, hello_size() - 1, HandshakeAuthError),
        ("the dialer's nonce", UPSTREAM, hello_size() - 40, HandshakeAuthError),
        ("the responder's ephemeral key", DOWNSTREAM, hello_size() - 1, HandshakeAuthError),
        # A changed sealed frame: the validator refuses it; the dialer, whose keys are right,
        # can only see the connection end (nothing sealed for it could be trusted).
        ("the dialer's sealed HelloAuth", UPSTREAM, hello_size() + 10, LinkClosedError),
    ],
)
async def test_a_tampered_handshake_is_refused_with_a_typed_reason(
    what: str, direction: str, position: int, dialer_sees: type[Exception]
) -> None:
    observer = CountingObserver()
    a = make_node(KEYS[0], free_port(), observer=observer)
    proxy_port = free_port()
    async with running(a):
        with recording_proxy(proxy_port, a.port, flip_byte_at(direction, position)):
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy_port)
            with pytest.raises(dialer_sees):
                await dial_handshake(reader, writer, KEYS[1], CHAIN, expected=a.pk)
            writer.close()
            await wait_until(
                lambda: observer.refused["handshake_auth_failed"] == 1, f"a refused ({what})"
            )
        assert a.net.connected_peers() == []
        assert a.info(KEYS[1].public_key).get("score", FAST.score_max) == FAST.score_max


async def test_a_recorded_handshake_replayed_makes_no_link() -> None:
    observer = CountingObserver()
    a = make_node(KEYS[0], free_port(), observer=observer)
    proxy_port = free_port()
    async with running(a):
        with recording_proxy(proxy_port, a.port) as proxy:
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy_port)
            await dial_handshake(reader, writer, KEYS[1], CHAIN, expected=a.pk)
            await wait_until(lambda: a.net.connected_peers() == [KEYS[1].public_key], "linked")
            writer.close()
            await wait_until(lambda: a.net.connected_peers() == [], "genuine link closed")
            recorded = bytes(proxy.capture.up)
        # Everything the genuine dialer sent, byte for byte, on a new connection.
        reader, writer = await asyncio.open_connection("127.0.0.1", a.port)
        writer.write(recorded)
        await writer.drain()
        theirs, _ = await read_frame(reader, HANDSHAKE_MAX_FRAME_BYTES)
        assert isinstance(theirs, Hello)  # a fresh Hello: fresh nonce, fresh ephemeral key
        assert await closed_by_peer(reader)
        writer.close()
        await wait_until(lambda: observer.refused["handshake_auth_failed"] == 1, "refused")
        assert a.net.connected_peers() == []


def downgrade_hello(kind: str) -> Hello | PlaintextHello:
    key, nonce = KEYS[1].public_key, secrets.token_bytes(32)
    if kind == "plaintext hello":  # a node of the plaintext protocol (ADR 0008) as it was
        return PlaintextHello(PLAINTEXT_VERSION, CHAIN, key, nonce, MIN_FRAME_BYTES)
    # today's Hello asking for version 1
    ephemeral = Ephemeral().public_bytes
    return Hello(PLAINTEXT_VERSION, CHAIN, key, nonce, MIN_FRAME_BYTES, ephemeral)


@pytest.mark.parametrize("kind", ["plaintext hello", "version 1 in a new hello"])
async def test_a_downgrade_to_plaintext_is_refused_in_the_clear(kind: str) -> None:
    observer = CountingObserver()
    a = make_node(KEYS[0], free_port(), observer=observer)
    async with running(a):
        reader, writer = await asyncio.open_connection("127.0.0.1", a.port)
        writer.write(encode_frame(downgrade_hello(kind)))
        await writer.drain()
        theirs, _ = await read_frame(reader, HANDSHAKE_MAX_FRAME_BYTES)
        assert isinstance(theirs, Hello)
        # A plaintext peer can read why: the refusal is the one frame it gets in the clear.
        verdict, _ = await read_frame(reader, HANDSHAKE_MAX_FRAME_BYTES)
        assert isinstance(verdict, Refuse)
        assert verdict.code == ProtocolVersionError.code
        assert await closed_by_peer(reader)
        writer.close()
        await wait_until(lambda: observer.refused["protocol_version"] == 1, "counted")
        assert a.net.connected_peers() == []


async def test_an_unknown_key_is_refused_with_a_sealed_reason() -> None:
    observer = CountingObserver()
    a = make_node(KEYS[0], free_port(), observer=observer)
    async with running(a):
        reader, writer = await asyncio.open_connection("127.0.0.1", a.port)
        with pytest.raises(PeerRefusedError) as refused:
            await dial_handshake(reader, writer, STRANGER, CHAIN, expected=a.pk)
        assert refused.value.reason == "unknown_peer"
        writer.close()
        await wait_until(lambda: observer.refused["unknown_peer"] == 1, "counted")


async def test_a_small_order_ephemeral_key_is_refused() -> None:
    observer = CountingObserver()
    a = make_node(KEYS[0], free_port(), observer=observer)
    async with running(a):
        reader, writer = await asyncio.open_connection("127.0.0.1", a.port)
        weak = Hello(
            PROTOCOL_VERSION,
            CHAIN,
            KEYS[1].public_key,
            secrets.token_bytes(32),
            MIN_FRAME_BYTES,
            bytes(32),
        )
        writer.write(encode_frame(weak))
        await read_frame(reader, HANDSHAKE_MAX_FRAME_BYTES)
        verdict, _ = await read_frame(reader, HANDSHAKE_MAX_FRAME_BYTES)
        assert isinstance(verdict, Refuse)
        assert verdict.code == "handshake_failed"
        writer.close()
        await wait_until(lambda: observer.refused["handshake_failed"] == 1, "counted")


@pytest.mark.parametrize("attack", ["changed", "replayed", "reordered"])
async def test_a_bad_frame_after_the_handshake_ends_the_link_unscored(attack: str) -> None:
    a = make_node(KEYS[0], free_port())
    b_pk = KEYS[1].public_key
    async with running(a):
        link = await authenticated_as(KEYS[1], a.port)
        await wait_until(lambda: a.net.connected_peers() == [b_pk], "linked")
        first = link.channel.seal_encoded(encode_frame(Ping(1)))
        second = link.channel.seal_encoded(encode_frame(Ping(2)))
        if attack == "changed":
            changed = bytearray(first)
            changed[-1] ^= 0x01
            link.writer.write(bytes(changed))
        elif attack == "replayed":
            link.writer.write(first + first)
        else:
            link.writer.write(second + first)
        assert await closed_by_peer(link.reader)
        link.writer.close()
        await wait_until(lambda: a.info(b_pk)["links"] == 0, "link closed")
        assert a.info(b_pk)["last_disconnect"].startswith("frame_auth_failed")
        # Anyone on the path could have done it: the peer is not punished and links again.
        assert a.info(b_pk)["score"] == FAST.score_max
        again = await authenticated_as(KEYS[1], a.port)
        await wait_until(lambda: a.net.connected_peers() == [b_pk], "linked again")
        again.writer.close()
