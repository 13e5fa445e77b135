"""Keys, hashes and the one function that builds the bytes every signature covers.

Ed25519 (RFC 8032) from the ``cryptography`` package.  A signature never covers a raw object:
it covers ``sign_bytes(domain, chain_id, payload)``, so a signature made for a transaction
cannot be replayed as a vote, a meter reading or a handshake, nor on another chain.

OpenSSL's verification is cofactorless and does not look at the key, so on top of it gridchain
refuses what Ed25519 libraries disagree on (protocol/edwards.py, ADR 0021): a public key that
is non-canonical, off the curve or of small order is refused where it is registered
(:func:`check_public_key`) *and* never verifies anything (:func:`verify_message`), and a
signature whose ``R`` has small order is refused.  Honest keys and signatures never have these
properties, so only forgeries and deliberately odd signatures are affected.
"""

from __future__ import annotations

import enum
import hashlib
from functools import lru_cache

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from gridchain.protocol.edwards import (
    KeyDefect,
    key_defect,
    refused_by_bytes,
    small_order_encodings,
)
from gridchain.protocol.errors import (
    BadKeyError,
    KeyNotOnCurveError,
    NonCanonicalKeyError,
    SignatureError,
    SmallOrderKeyError,
)

PUBLIC_KEY_BYTES = 32
SEED_BYTES = 32
SIGNATURE_BYTES = 64
HASH_BYTES = 32
CHAIN_ID_BYTES = 32

_SIGN_PREFIX = b"gridchain/v1/"


class Domain(enum.Enum):
    """What a signature is for.  The value is part of the signed bytes."""

    TX = b"tx"
    BLOCK = b"block"
    VOTE = b"vote"
    METER_READING = b"meter-reading"
    HANDSHAKE = b"handshake"
    SEALED_READ = b"sealed-read"


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def sign_bytes(domain: Domain, chain_id: bytes, payload: bytes) -> bytes:
    """``b"gridchain/v1/" + domain + 0x00 + chain_id (32 bytes) + payload``.

    The zero byte ends the variable-length domain so no domain is a prefix of another's bytes.
    """
    if len(chain_id) != CHAIN_ID_BYTES:
        raise BadKeyError(f"chain id must be {CHAIN_ID_BYTES} bytes, got {len(chain_id)}")
    return _SIGN_PREFIX + domain.value + b"\x00" + chain_id + payload


def check_public_key(public_key: bytes, *, what: str) -> None:
    """Refuse a key that must never be registered, with a BadKeyError naming ``what``.

    Called wherever a key enters the chain (genesis, RegisterParticipant, RegisterMeter) so a
    weak key is refused with a reason instead of being registered and never verifying.
    """
    defect = key_defect(public_key)
    if defect is None:
        return
    if defect is KeyDefect.WRONG_LENGTH:
        raise BadKeyError(
            f"{what}: a public key is {PUBLIC_KEY_BYTES} bytes, got {len(public_key)}"
        )
    if defect is KeyDefect.NON_CANONICAL:
        raise NonCanonicalKeyError(f"{what}: public key is not a canonical Ed25519 encoding")
    if defect is KeyDefect.NOT_ON_CURVE:
        raise KeyNotOnCurveError(f"{what}: public key is not a point on the Ed25519 curve")
    raise SmallOrderKeyError(f"{what}: public key has small order (it has no secret key)")


@lru_cache(maxsize=4096)
def _load_public(raw: bytes) -> Ed25519PublicKey | None:
    """The OpenSSL key for ``raw``, or None when gridchain refuses the key (cached per key).

    refused_by_bytes is check_public_key without the curve-equation test, which costs a square
    root in Python: OpenSSL cannot decode an off-curve key and refuses it itself.
    """
    if refused_by_bytes(raw):
        return None
    return Ed25519PublicKey.from_public_bytes(raw)


def verify_message(public_key: bytes, signature: bytes, message: bytes) -> bool:
    """Ed25519 over raw bytes with gridchain's rules; docs/spec/vectors.json pins its table.

    Refused before OpenSSL is asked: a key :func:`check_public_key` refuses, and a signature
    whose ``R`` is any encoding of a small-order point.  OpenSSL itself refuses S >= L and a
    non-canonical ``R`` (it compares encodings), and checks the cofactorless equation.
    """
    if len(public_key) != PUBLIC_KEY_BYTES or len(signature) != SIGNATURE_BYTES:
        return False
    if signature[:PUBLIC_KEY_BYTES] in small_order_encodings():
        return False
    key = _load_public(public_key)
    if key is None:
        return False
    try:
        key.verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def verify(
    public_key: bytes, signature: bytes, domain: Domain, chain_id: bytes, payload: bytes
) -> bool:
    """True when ``signature`` is ``public_key``'s signature of the domain-separated payload."""
    return verify_message(public_key, signature, sign_bytes(domain, chain_id, payload))


def require_valid(
    public_key: bytes,
    signature: bytes,
    domain: Domain,
    chain_id: bytes,
    payload: bytes,
    *,
    what: str,
) -> None:
    if not verify(public_key, signature, domain, chain_id, payload):
        raise SignatureError(f"{what}: signature does not verify")


class SigningKey:
    """An Ed25519 private key.  Only its 32-byte seed is ever stored (encrypted or in a config)."""

    __slots__ = ("_key", "public_key")

    def __init__(self, seed: bytes) -> None:
        if len(seed) != SEED_BYTES:
            raise BadKeyError(f"an Ed25519 seed is {SEED_BYTES} bytes, got {len(seed)}")
        self._key = Ed25519PrivateKey.from_private_bytes(seed)
        self.public_key: bytes = self._key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(
            Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.Raw,
                serialization.PrivateFormat.Raw,
                serialization.NoEncryption(),
            )
        )

    @classmethod
    def from_hex(cls, text: str) -> SigningKey:
        try:
            seed = bytes.fromhex(text.strip())
        except ValueError:
            raise BadKeyError("a private key is 64 hex digits") from None
        return cls(seed)

    @property
    def seed(self) -> bytes:
        return self._key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )

    def sign(self, domain: Domain, chain_id: bytes, payload: bytes) -> bytes:
        return self._key.sign(sign_bytes(domain, chain_id, payload))

    def __repr__(self) -> str:  # never print the secret
        return f"SigningKey(public_key={self.public_key.hex()})"
