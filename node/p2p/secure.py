"""The encrypted channel of a link: per-direction ChaCha20-Poly1305 keys from an X25519 secret.

After the two plaintext Hellos (each carrying a fresh ephemeral X25519 key), both sides compute
the Diffie-Hellman secret of the two ephemeral keys and expand it with HKDF-SHA256, salted with
the hash of both Hellos, into one key per direction (ADR 0024).  The ephemeral private keys
live only for the handshake, so a recording of a link cannot be read later even with both
nodes' long-term keys (forward secrecy); the Hellos' hash in the salt makes the keys differ as
soon as one byte of either Hello was changed on the way.

Every frame after the Hellos is sealed: a 4-byte big-endian length of the ciphertext (which is
the AEAD's associated data), then ChaCha20-Poly1305 of the frame body under a 96-bit nonce that
is the frame's counter in that direction.  The counter is never sent: a frame that was
dropped, replayed, reordered or changed fails to open, and the link ends
(:class:`FrameAuthError`).  The length is checked against the bound before the ciphertext is
read, as for plaintext frames.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gridchain.node.p2p.errors import FrameAuthError, HandshakeError, LinkClosedError
from gridchain.node.p2p.frames import LENGTH_PREFIX_BYTES, Frame, decode_frame
from gridchain.protocol.crypto import sha256
from gridchain.protocol.errors import MalformedError, OversizeError

#: Bytes the AEAD adds to every frame (the Poly1305 tag).
TAG_BYTES: Final = 16
#: Length of an X25519 public key.
EPHEMERAL_KEY_BYTES: Final = 32
_KDF_INFO: Final = b"gridchain/p2p/v2/frame-keys"
_HELLOS_DOMAIN: Final = b"gridchain/p2p/v2/hellos\x00"
_LENGTH = struct.Struct(">I")
_NONCE_PREFIX: Final = b"\x00\x00\x00\x00"
_MAX_COUNTER: Final = 2**64 - 1


def hellos_hash(initiator_hello: bytes, responder_hello: bytes) -> bytes:
    """The hash of both Hello frame bodies in role order (length-prefixed, unambiguous)."""
    return sha256(
        _HELLOS_DOMAIN
        + _LENGTH.pack(len(initiator_hello))
        + initiator_hello
        + _LENGTH.pack(len(responder_hello))
        + responder_hello
    )


class Ephemeral:
    """This side's one-use X25519 key pair of a handshake."""

    def __init__(self) -> None:
        self._private = X25519PrivateKey.generate()
        self.public_bytes = self._private.public_key().public_bytes_raw()

    def shared_secret(self, peer_public: bytes) -> bytes:
        """The Diffie-Hellman secret with the peer's ephemeral key.

        A key of small order gives the all-zero secret (cryptography refuses it): the peer
        would then fix the keys by itself, so the handshake is refused.
        """
        try:
            return self._private.exchange(X25519PublicKey.from_public_bytes(peer_public))
        except ValueError:
            raise HandshakeError("the peer's ephemeral key is not usable") from None


class SecureChannel:
    """The two directions of one link's encryption: seal what we send, open what we read."""

    __slots__ = ("_open", "_recv_counter", "_seal", "_send_counter")

    def __init__(self, send_key: bytes, recv_key: bytes) -> None:
        self._seal = ChaCha20Poly1305(send_key)
        self._open = ChaCha20Poly1305(recv_key)
        self._send_counter = 0
        self._recv_counter = 0

    @classmethod
    def derive(cls, shared_secret: bytes, hellos: bytes, *, initiator: bool) -> SecureChannel:
        """Both directions' keys from the DH secret, salted with the Hellos' hash (which holds
        both chain ids: a peer of another chain can still read why it is refused)."""
        okm = HKDF(algorithm=hashes.SHA256(), length=64, salt=hellos, info=_KDF_INFO).derive(
            shared_secret
        )
        to_responder, to_initiator = okm[:32], okm[32:]
        if initiator:
            return cls(to_responder, to_initiator)
        return cls(to_initiator, to_responder)

    @staticmethod
    def _nonce(counter: int) -> bytes:
        if counter >= _MAX_COUNTER:
            raise FrameAuthError("frame counter exhausted: the link must be renewed")
        return _NONCE_PREFIX + counter.to_bytes(8, "big")

    def seal(self, body: bytes | memoryview) -> bytes:
        """Length prefix + ciphertext of one frame body, under the next send counter."""
        prefix = _LENGTH.pack(len(body) + TAG_BYTES)
        nonce = self._nonce(self._send_counter)
        self._send_counter += 1
        return prefix + self._seal.encrypt(nonce, bytes(body), prefix)

    def seal_encoded(self, encoded_frame: bytes) -> bytes:
        """Seal a frame encoded with its plaintext length prefix (frames.encode_frame)."""
        return self.seal(memoryview(encoded_frame)[LENGTH_PREFIX_BYTES:])

    def open(self, prefix: bytes, ciphertext: bytes) -> bytes:
        """The frame body, or FrameAuthError: changed, replayed, reordered or foreign."""
        nonce = self._nonce(self._recv_counter)
        try:
            body = self._open.decrypt(nonce, ciphertext, prefix)
        except InvalidTag:
            raise FrameAuthError(
                f"frame {self._recv_counter} failed authentication "
                "(changed, replayed, reordered or not for this link)"
            ) from None
        self._recv_counter += 1
        return body

    async def read_frame(self, reader: asyncio.StreamReader, max_bytes: int) -> tuple[Frame, int]:
        """Read, open and decode one sealed frame whose body may be up to ``max_bytes``.

        LinkClosedError at end of stream; OversizeError/MalformedError for a length outside
        the bounds (before reading it); FrameAuthError for a frame that does not open; a
        DecodeError for an authentic frame that is not a valid record.
        """
        try:
            prefix = await reader.readexactly(LENGTH_PREFIX_BYTES)
        except asyncio.IncompleteReadError as exc:
            what = "connection closed" if not exc.partial else "connection closed mid-frame"
            raise LinkClosedError(what) from None
        (length,) = _LENGTH.unpack(prefix)
        if length <= TAG_BYTES:
            raise MalformedError(f"a sealed frame of {length} bytes holds no body")
        if length > max_bytes + TAG_BYTES:
            raise OversizeError(
                f"frame of {length - TAG_BYTES} bytes exceeds the limit of {max_bytes}"
            )
        try:
            ciphertext = await reader.readexactly(length)
        except asyncio.IncompleteReadError:
            raise LinkClosedError("connection closed mid-frame") from None
        return decode_frame(self.open(prefix, ciphertext)), LENGTH_PREFIX_BYTES + length
