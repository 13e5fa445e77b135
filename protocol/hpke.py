"""HPKE (RFC 9180) base mode with DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305.

Opening uses ``cryptography``'s own HPKE (:class:`cryptography.hazmat.primitives.hpke.Suite`).
Sealing has two forms: :func:`seal`, the library's randomized single-shot encryption, and
:func:`seal_derived`, the same RFC 9180 construction written out here with an ephemeral key
the caller derives.  The library draws the ephemeral key itself, and a sealed transaction
needs it derived from the content key (docs/adr/0026): a validator that opened the content key
must be able to recompute every other validator's wrapped key byte for byte, so that all
validators reach the same verdict on a transaction (a sender cannot give each validator a
different key).  Both forms produce ``enc || ciphertext`` and open with the same function;
tests/unit/protocol/test_hpke.py checks each against the other.

X25519 public keys are checked by :func:`check_x25519_public_key`: a non-canonical encoding
(u >= p, or the unused top bit set) or a low-order point (one whose shared secret with every
private key is all zero) is refused, so a registered key always has a secret behind it.
"""

from __future__ import annotations

import hashlib
import hmac

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from gridchain.protocol.errors import BadKeyError, GridchainError

KEY_BYTES = 32
#: The length of ``enc`` (the ephemeral public key) in front of every HPKE ciphertext.
ENC_BYTES = 32
TAG_BYTES = 16
_P = 2**255 - 19
_KEM_ID = 0x0020  # DHKEM(X25519, HKDF-SHA256)
_KDF_ID = 0x0001  # HKDF-SHA256
_AEAD_ID = 0x0003  # ChaCha20Poly1305
_KEM_SUITE = b"KEM" + _KEM_ID.to_bytes(2, "big")
_HPKE_SUITE = (
    b"HPKE" + _KEM_ID.to_bytes(2, "big") + _KDF_ID.to_bytes(2, "big") + _AEAD_ID.to_bytes(2, "big")
)
_MODE_BASE = b"\x00"
SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)
#: A fixed scalar used only to test a public key for low order (its shared secret is zero).
_PROBE = X25519PrivateKey.from_private_bytes(hashlib.sha256(b"gridchain/x25519-probe").digest())


class OpenError(GridchainError):
    """A ciphertext that does not open with this key and context (wrong key, moved, altered)."""

    code = "cannot_open"


class BadX25519KeyError(BadKeyError):
    """32 bytes that are not a usable X25519 public key (non-canonical or of low order)."""

    code = "bad_encryption_key"


def check_x25519_public_key(raw: bytes, *, what: str = "encryption key") -> X25519PublicKey:
    """The key behind ``raw``, or BadX25519KeyError for a key nobody holds a secret of."""
    if len(raw) != KEY_BYTES:
        raise BadX25519KeyError(f"{what}: an X25519 public key is 32 bytes, got {len(raw)}")
    u = int.from_bytes(raw, "little")
    if u >= _P:  # includes every value with the top bit set
        raise BadX25519KeyError(f"{what}: non-canonical X25519 public key")
    key = X25519PublicKey.from_public_bytes(raw)
    try:
        shared = _PROBE.exchange(key)
    except ValueError:  # OpenSSL refuses an all-zero shared secret
        shared = bytes(KEY_BYTES)
    if shared == bytes(KEY_BYTES):
        raise BadX25519KeyError(f"{what}: low-order X25519 public key (no secret behind it)")
    return key


def public_bytes(key: X25519PrivateKey) -> bytes:
    return key.public_key().public_bytes_raw()


def seal(plaintext: bytes, public_key: X25519PublicKey, info: bytes) -> bytes:
    """``enc || ciphertext`` with a fresh random ephemeral key (the library's HPKE)."""
    return SUITE.encrypt(plaintext, public_key, info=info)


def open_sealed(ciphertext: bytes, private_key: X25519PrivateKey, info: bytes) -> bytes:
    """The plaintext, or OpenError if this key and ``info`` do not open ``ciphertext``."""
    if len(ciphertext) < ENC_BYTES + TAG_BYTES:
        raise OpenError("ciphertext shorter than an HPKE encapsulation and tag")
    try:
        return SUITE.decrypt(ciphertext, private_key, info=info)
    except (InvalidTag, ValueError) as exc:
        raise OpenError(f"cannot open: {type(exc).__name__}") from None


def seal_derived(
    plaintext: bytes, public_key: X25519PublicKey, info: bytes, ephemeral_seed: bytes
) -> bytes:
    """RFC 9180 SealBase with the ephemeral private key ``ephemeral_seed`` (32 bytes).

    Same wire form as :func:`seal`; deterministic in its arguments.  The seed must be secret
    to everyone who may not read ``plaintext`` (docs/adr/0026 derives it from the content key).
    """
    ephemeral = X25519PrivateKey.from_private_bytes(ephemeral_seed)
    enc = public_bytes(ephemeral)
    pk_r = public_key.public_bytes_raw()
    dh = ephemeral.exchange(public_key)
    eae_prk = _labeled_extract(_KEM_SUITE, b"", b"eae_prk", dh)
    shared_secret = _labeled_expand(_KEM_SUITE, eae_prk, b"shared_secret", enc + pk_r, 32)
    psk_id_hash = _labeled_extract(_HPKE_SUITE, b"", b"psk_id_hash", b"")
    info_hash = _labeled_extract(_HPKE_SUITE, b"", b"info_hash", info)
    context = _MODE_BASE + psk_id_hash + info_hash
    secret = _labeled_extract(_HPKE_SUITE, shared_secret, b"secret", b"")
    key = _labeled_expand(_HPKE_SUITE, secret, b"key", context, 32)
    base_nonce = _labeled_expand(_HPKE_SUITE, secret, b"base_nonce", context, 12)
    # Sequence number 0: the nonce is the base nonce itself.
    return enc + ChaCha20Poly1305(key).encrypt(base_nonce, plaintext, b"")


def _labeled_extract(suite: bytes, salt: bytes, label: bytes, ikm: bytes) -> bytes:
    return hmac.new(salt or bytes(32), b"HPKE-v1" + suite + label + ikm, hashlib.sha256).digest()


def _labeled_expand(suite: bytes, prk: bytes, label: bytes, info: bytes, length: int) -> bytes:
    labeled = length.to_bytes(2, "big") + b"HPKE-v1" + suite + label + info
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + labeled + bytes([counter]), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]
