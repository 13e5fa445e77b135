"""The signed challenge-response handshake that authenticates every link (ADR 0008).

Both sides of a fresh TCP connection do the same four steps; only the role differs (the
*initiator* dialed, the *responder* accepted):

1. send ``Hello(version, chain_id, public_key, nonce, max_frame_bytes)`` with 32 fresh random
   bytes as the nonce;
2. read the peer's Hello and refuse it (with a ``Refuse`` frame naming the reason) unless the
   version and chain id match, the key is not our own, the key is a genesis validator that is
   not banned, and - when we dialed a configured peer - it is the key we expected there;
3. send ``HelloAuth``: our signature (Domain.HANDSHAKE, chain id) over the transcript that binds
   both keys, both nonces and our role; read the peer's and verify it;
4. send ``Ping(height)`` to say "accepted", and read the peer's Ping (or its Refuse).

Only after step 4 does either side treat the link as authenticated, so a dialer that is
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
    Refuse,
    encode_frame,
    read_frame,
)
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
    version: int = PROTOCOL_VERSION,
) -> bytes:
    """The payload each side signs (sign_bytes adds the HANDSHAKE domain and the chain id)."""
    return HandshakeTranscript(
        signer_is_initiator=signer_is_initiator,
        version=version,
        initiator_key=initiator_key,
        responder_key=responder_key,
        initiator_nonce=initiator_nonce,
        responder_nonce=responder_nonce,
    ).encode()


async def send_refusal(writer: asyncio.StreamWriter, error: HandshakeError) -> None:
    """Tell the peer why before closing; best effort, a peer that does not read gets nothing."""
    refuse = Refuse(code=error.code[:64], message=error.message[:256])
    try:
        writer.write(encode_frame(refuse))
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


async def _expect(reader: asyncio.StreamReader, kind: type[F]) -> F:
    frame: Frame
    frame, _ = await read_frame(reader, HANDSHAKE_MAX_FRAME_BYTES)
    if isinstance(frame, Refuse):
        raise PeerRefusedError(frame.code, frame.message)
    if not isinstance(frame, kind):
        raise HandshakeError(f"expected {kind.__name__}, got {type(frame).__name__}")
    return frame


@dataclass(frozen=True, slots=True)
class Authenticated:
    """What a completed handshake proved and learned about the peer."""

    public_key: bytes
    height: int
    max_frame_bytes: int


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
    validator, banned).  Every refusal decided here is also sent to the peer as a Refuse frame;
    a refusal by the peer is raised as PeerRefusedError.  DecodeError (a malformed handshake
    frame), LinkClosedError and OSError pass through; the caller closes the connection.
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
    writer.write(encode_frame(Hello(PROTOCOL_VERSION, chain_id, own, my_nonce, max_frame_bytes)))
    await writer.drain()
    hello = await _expect(reader, Hello)
    try:
        _check_hello(hello, own=own, my_nonce=my_nonce, chain_id=chain_id)
        admit(hello.public_key)
        if expected_key is not None and hello.public_key != expected_key:
            raise UnexpectedPeerError(
                f"expected validator {expected_key.hex()[:16]}, "
                f"the peer is {hello.public_key.hex()[:16]}"
            )
    except HandshakeError as exc:
        await send_refusal(writer, exc)
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
        )

    signature = key.sign(Domain.HANDSHAKE, chain_id, transcript(initiator))
    writer.write(encode_frame(HelloAuth(signature)))
    await writer.drain()
    auth = await _expect(reader, HelloAuth)
    if not verify(peer, auth.signature, Domain.HANDSHAKE, chain_id, transcript(not initiator)):
        error = BadHandshakeSignatureError(
            f"handshake signature of {peer.hex()[:16]} does not verify"
        )
        await send_refusal(writer, error)
        raise error
    writer.write(encode_frame(Ping(height)))
    await writer.drain()
    accepted = await _expect(reader, Ping)
    return Authenticated(peer, accepted.height, hello.max_frame_bytes)


def _check_hello(hello: Hello, *, own: bytes, my_nonce: bytes, chain_id: bytes) -> None:
    if hello.version != PROTOCOL_VERSION:
        raise ProtocolVersionError(
            f"peer speaks protocol version {hello.version}, this node {PROTOCOL_VERSION}"
        )
    if hello.chain_id != chain_id:
        raise ChainMismatchError(
            f"peer is on chain {hello.chain_id.hex()[:16]}, this node on {chain_id.hex()[:16]}"
        )
    if hello.public_key == own or hello.nonce == my_nonce:
        raise SelfConnectionError("the peer presented this node's own key or nonce")
