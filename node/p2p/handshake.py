"""The handshake that authenticates and encrypts every link (ADR 0024, superseding 0008).

Both sides of a fresh TCP connection do the same steps; only the role differs (the
*initiator* dialed, the *responder* accepted):

1. send ``Hello(version, chain_id, public_key, nonce, max_frame_bytes, ephemeral_key)`` in the
   clear, with 32 fresh random bytes as the nonce and a fresh X25519 key;
2. read the peer's Hello and refuse it (with a plaintext ``Refuse`` naming the reason) unless
   the version is this one (a version-1 ``PlaintextHello`` is a downgrade and refused as
   ``protocol_version``), the chain id matches, the key is not our own, the key may link with
   us (a genesis validator, or a genesis gateway on a validator) and is not banned, and - when
   we dialed a configured peer - it is the key we expected there;
3. derive the link's keys (node.p2p.secure): X25519 of the two ephemeral keys, HKDF-SHA256
   salted with the hash of both Hellos; every frame from here on is sealed;
4. send ``HelloAuth``: our signature (Domain.HANDSHAKE, chain id) over the transcript that binds
   both keys, both nonces, our role and the Hellos' hash; read the peer's, which must open
   (else a Hello was changed, a recorded handshake replayed, or the ephemeral keys swapped:
   ``handshake_auth_failed``), and verify it;
5. send ``Ping(height)`` to say "accepted", and read the peer's Ping (or its sealed Refuse).

Only after step 5 does either side treat the link as authenticated, so a dialer that is
refused always learns why, as a typed error, instead of seeing a link that dies at once.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from gridchain.node.p2p.errors import (
    BadHandshakeSignatureError,
    ChainMismatchError,
    FrameAuthError,
    HandshakeAuthError,
    HandshakeError,
    HandshakeTimeoutError,
    PeerRefusedError,
    ProtocolVersionError,
    SelfConnectionError,
    UnexpectedPeerError,
)
from gridchain.node.p2p.frames import (
    HANDSHAKE_MAX_FRAME_BYTES,
    PROTOCOL_VERSION,
    Frame,
    HandshakeTranscript,
    Hello,
    HelloAuth,
    Ping,
    PlaintextHello,
    Refuse,
    encode_frame,
    read_frame,
)
from gridchain.node.p2p.secure import Ephemeral, SecureChannel, hellos_hash
from gridchain.protocol.crypto import Domain, SigningKey, verify
from gridchain.protocol.encoding import Record

NONCE_BYTES = 32
_REFUSE_FLUSH_S = 1.0


def transcript_bytes(
    *,
    signer_is_initiator: bool,
    initiator_key: bytes,
    responder_key: bytes,
    initiator_nonce: bytes,
    responder_nonce: bytes,
    hellos: bytes,
    version: int = PROTOCOL_VERSION,
) -> bytes:
    """The payload each side signs (sign_bytes adds the HANDSHAKE domain and the chain id);
    ``hellos`` is :func:`node.p2p.secure.hellos_hash` of the connection's two Hellos."""
    return HandshakeTranscript(
        signer_is_initiator=signer_is_initiator,
        version=version,
        initiator_key=initiator_key,
        responder_key=responder_key,
        initiator_nonce=initiator_nonce,
        responder_nonce=responder_nonce,
        hellos_hash=hellos,
    ).encode()


async def send_refusal(
    writer: asyncio.StreamWriter, error: HandshakeError, channel: SecureChannel | None = None
) -> None:
    """Tell the peer why before closing (sealed once the link has keys); best effort, a peer
    that does not read gets nothing."""
    refuse = encode_frame(Refuse(code=error.code[:64], message=error.message[:256]))
    try:
        writer.write(refuse if channel is None else channel.seal_encoded(refuse))
        await asyncio.wait_for(writer.drain(), _REFUSE_FLUSH_S)
    except (OSError, TimeoutError):
        pass


async def linger_close(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, timeout_s: float = 1.0
) -> None:
    """Close after a refusal so that the peer can still read it.

    Closing a socket with unread input makes the kernel send a reset, and a reset can destroy
    the Refuse frame before the peer reads it (asyncio then raises instead of returning the
    buffered bytes).  So: half-close, discard input until the peer closes too (or a short
    timeout), then close.
    """
    transport = writer.transport
    try:
        if writer.can_write_eof() and not transport.is_closing():
            writer.write_eof()
        async with asyncio.timeout(timeout_s):
            while await reader.read(4096):
                pass
    except (OSError, TimeoutError, RuntimeError):
        pass
    finally:
        transport.abort()


F = TypeVar("F", bound=Record)


def _expected(frame: Frame, kind: type[F]) -> F:
    if isinstance(frame, Refuse):
        raise PeerRefusedError(frame.code, frame.message)
    if not isinstance(frame, kind):
        raise HandshakeError(f"expected {kind.__name__}, got {type(frame).__name__}")
    return frame


async def _expect_hello(reader: asyncio.StreamReader) -> Hello | PlaintextHello:
    frame: Frame
    frame, _ = await read_frame(reader, HANDSHAKE_MAX_FRAME_BYTES)
    if isinstance(frame, PlaintextHello):
        return frame
    return _expected(frame, Hello)


async def _expect_sealed(reader: asyncio.StreamReader, channel: SecureChannel, kind: type[F]) -> F:
    try:
        frame, _ = await channel.read_frame(reader, HANDSHAKE_MAX_FRAME_BYTES)
    except FrameAuthError as exc:
        raise HandshakeAuthError(
            f"the peer's {kind.__name__} does not open under this connection's keys: a Hello "
            f"was changed on the way, a recorded handshake replayed, or the keys swapped "
            f"({exc.message})"
        ) from None
    return _expected(frame, kind)


@dataclass(frozen=True, slots=True)
class Authenticated:
    """What a completed handshake proved and learned about the peer, and the link's keys."""

    public_key: bytes
    height: int
    max_frame_bytes: int
    channel: SecureChannel


async def handshake(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    *,
    key: SigningKey,
    chain_id: bytes,
    initiator: bool,
    admit: Callable[[bytes], None],
    expected_key: bytes | None,
    height: int,
    max_frame_bytes: int,
    timeout_s: float,
    nonce: bytes | None = None,
) -> Authenticated:
    """Authenticate the peer on a fresh connection.

    ``admit(public_key)`` raises a HandshakeError for a key this node will not link with (not a
    validator, banned).  Every refusal decided here is also sent to the peer as a Refuse frame
    (except when its sealed frame did not open: it could not read ours either); a refusal by
    the peer is raised as PeerRefusedError.  DecodeError (a malformed handshake frame),
    LinkClosedError and OSError pass through; the caller closes the connection.
    """
    my_nonce = nonce if nonce is not None else secrets.token_bytes(NONCE_BYTES)
    try:
        async with asyncio.timeout(timeout_s):
            return await _run(
                reader,
                writer,
                key=key,
                chain_id=chain_id,
                initiator=initiator,
                admit=admit,
                expected_key=expected_key,
                height=height,
                max_frame_bytes=max_frame_bytes,
                my_nonce=my_nonce,
            )
    except TimeoutError:
        raise HandshakeTimeoutError(f"no handshake within {timeout_s} s") from None


async def _run(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    *,
    key: SigningKey,
    chain_id: bytes,
    initiator: bool,
    admit: Callable[[bytes], None],
    expected_key: bytes | None,
    height: int,
    max_frame_bytes: int,
    my_nonce: bytes,
) -> Authenticated:
    own = key.public_key
    ephemeral = Ephemeral()
    mine = Hello(PROTOCOL_VERSION, chain_id, own, my_nonce, max_frame_bytes, ephemeral.public_bytes)
    writer.write(encode_frame(mine))
    await writer.drain()
    received = await _expect_hello(reader)
    try:
        hello = _check_version(received)
        # Decoding is canonical, so re-encoding the peer's Hello gives the bytes it sent.
        ours, theirs = mine.encode(), hello.encode()
        hellos = hellos_hash(ours, theirs) if initiator else hellos_hash(theirs, ours)
        secret = ephemeral.shared_secret(hello.ephemeral_key)
    except HandshakeError as exc:
        await send_refusal(writer, exc)  # in the clear: the peer has no keys for this link
        raise
    channel = SecureChannel.derive(secret, hellos, initiator=initiator)
    try:
        _check_peer(hello, own=own, my_nonce=my_nonce, chain_id=chain_id)
        admit(hello.public_key)
        if expected_key is not None and hello.public_key != expected_key:
            raise UnexpectedPeerError(
                f"expected validator {expected_key.hex()[:16]}, "
                f"the peer is {hello.public_key.hex()[:16]}"
            )
    except HandshakeError as exc:
        # Sealed: the peer has sent its HelloAuth by now and reads a sealed frame next.
        await send_refusal(writer, exc, channel)
        raise
    peer = hello.public_key
    init_key, resp_key = (own, peer) if initiator else (peer, own)
    init_nonce, resp_nonce = (my_nonce, hello.nonce) if initiator else (hello.nonce, my_nonce)

    def transcript(signer_is_initiator: bool) -> bytes:
        return transcript_bytes(
            signer_is_initiator=signer_is_initiator,
            initiator_key=init_key,
            responder_key=resp_key,
            initiator_nonce=init_nonce,
            responder_nonce=resp_nonce,
            hellos=hellos,
        )

    signature = key.sign(Domain.HANDSHAKE, chain_id, transcript(initiator))
    writer.write(channel.seal_encoded(encode_frame(HelloAuth(signature))))
    await writer.drain()
    auth = await _expect_sealed(reader, channel, HelloAuth)
    if not verify(peer, auth.signature, Domain.HANDSHAKE, chain_id, transcript(not initiator)):
        error = BadHandshakeSignatureError(
            f"handshake signature of {peer.hex()[:16]} does not verify"
        )
        await send_refusal(writer, error, channel)
        raise error
    writer.write(channel.seal_encoded(encode_frame(Ping(height))))
    await writer.drain()
    accepted = await _expect_sealed(reader, channel, Ping)
    return Authenticated(peer, accepted.height, hello.max_frame_bytes, channel)


def _check_version(hello: Hello | PlaintextHello) -> Hello:
    """Refuse every other version, a plaintext (version 1) Hello above all: no downgrade."""
    if isinstance(hello, PlaintextHello) or hello.version != PROTOCOL_VERSION:
        plain = " (plaintext links)" if isinstance(hello, PlaintextHello) else ""
        raise ProtocolVersionError(
            f"peer speaks protocol version {hello.version}{plain}, this node "
            f"{PROTOCOL_VERSION} (encrypted links only)"
        )
    return hello


def _check_peer(hello: Hello, *, own: bytes, my_nonce: bytes, chain_id: bytes) -> None:
    if hello.chain_id != chain_id:
        raise ChainMismatchError(
            f"peer is on chain {hello.chain_id.hex()[:16]}, this node on {chain_id.hex()[:16]}"
        )
    if hello.public_key == own or hello.nonce == my_nonce:
        raise SelfConnectionError("the peer presented this node's own key or nonce")
