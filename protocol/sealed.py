"""Seal a transaction body to the validator set, and open it again at execution.

A client picks one random 32-byte content key K, encrypts the inner :class:`TxPayload` (the
same sender and nonce as the envelope, and the real body) once with ChaCha20-Poly1305 under K,
and wraps K for every validator with HPKE (protocol/hpke.py) to the encryption key genesis
registers for it.  The outer :class:`Transaction` carries a :class:`SealedTx` body and is
signed over all of it, so anyone can check its sender, nonce, size and signature, and nobody
without a validator's private key can read what it does.

Two bindings keep the pieces in their envelope: the body's AEAD data and each wrap's HPKE
``info`` name the chain id, the envelope's sender and nonce (the wrap also the hash of the
body ciphertext, its recipient index and the key set), so a wrapped key or a ciphertext copied
into another envelope does not open there.

Every validator must reach the same verdict, yet each can open only its own wrap.  So the
ephemeral key of wrap j is derived from K (a keyed hash of K and wrap j's context) and a
validator that opened K recomputes *every* wrap and requires each to be byte-identical: if any
wrap is not the derived sealing of one K, every validator that can open its wrap sees the
mismatch and one that cannot open its wrap refuses too (the verdict "refused" is then the same
everywhere; docs/adr/0026-sealed-payloads-and-sealed-reads.md gives the argument).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from gridchain.protocol.crypto import SigningKey, sha256
from gridchain.protocol.encoding import Record, decode
from gridchain.protocol.errors import DecodeError, GridchainError
from gridchain.protocol.hpke import (
    KEY_BYTES,
    OpenError,
    check_x25519_public_key,
    open_sealed,
    seal_derived,
)
from gridchain.protocol.tx import (
    MAX_SEALED_RECIPIENTS,
    MAX_TX_BYTES,
    Burn,
    Mint,
    RegisterMeter,
    RegisterParticipant,
    SealedTx,
    Transaction,
    TxBody,
    TxPayload,
    UpdateValidators,
    sign_tx,
)

_BODY_DOMAIN = b"gridchain/sealed-body\x00"
_WRAP_DOMAIN = b"gridchain/sealed-key\x00"
_EPHEMERAL_DOMAIN = b"gridchain/sealed-ephemeral\x00"
_KEY_SET_DOMAIN = b"gridchain/encryption-keys\x00"
#: The content key is used once, so a constant nonce is safe (RFC 8439 section 4).
_BODY_NONCE = bytes(12)


class SealedRefusedError(GridchainError):
    """A sealed transaction whose body the validators refuse (the same verdict on each)."""

    code = "sealed_refused"


class InconsistentWrapsError(SealedRefusedError):
    """The wrapped keys are not all the sealing of one content key (validators could differ)."""

    code = "sealed_inconsistent_keys"


class SealedBodyError(SealedRefusedError):
    """The body does not open under the content key, or is not one inner payload."""

    code = "sealed_bad_body"


class SealedMismatchError(SealedRefusedError):
    """The inner payload names another sender or nonce than its envelope, or is sealed again."""

    code = "sealed_mismatch"


class SealedKindError(SealedRefusedError):
    """A kind that must stay public: governance's registrations, mints and burns."""

    code = "sealed_kind_refused"


class SealedUnopenedError(SealedRefusedError):
    """This validator's wrapped key does not open (wrong key, moved from another envelope)."""

    code = "sealed_cannot_open"


#: Bodies that are never sealed: the registry of participants and meters and the money supply
#: are public, and a follower that only reads envelopes must be able to tell who is
#: registered (ADR 0026).
PUBLIC_ONLY: tuple[type[Record], ...] = (
    RegisterParticipant,
    RegisterMeter,
    Mint,
    Burn,
    UpdateValidators,
)


def key_set_hash(encryption_keys: Sequence[bytes]) -> bytes:
    """The hash naming the validators' encryption keys, in genesis order."""
    return sha256(_KEY_SET_DOMAIN + b"".join(encryption_keys))


def body_aad(chain_id: bytes, sender: bytes, nonce: int) -> bytes:
    return _BODY_DOMAIN + chain_id + sender + nonce.to_bytes(8, "big")


def wrap_info(
    chain_id: bytes, sender: bytes, nonce: int, ciphertext: bytes, *, index: int, key_set: bytes
) -> bytes:
    """HPKE ``info`` of wrap ``index``: binds it to its envelope, its body and its recipient."""
    return (
        _WRAP_DOMAIN
        + chain_id
        + sender
        + nonce.to_bytes(8, "big")
        + sha256(ciphertext)
        + index.to_bytes(2, "big")
        + key_set
    )


def ephemeral_seed(content_key: bytes, info: bytes) -> bytes:
    return hmac.new(content_key, _EPHEMERAL_DOMAIN + info, hashlib.sha256).digest()


def _wraps(
    content_key: bytes,
    keys: Sequence[X25519PublicKey],
    info_of: Callable[[int], bytes],
) -> tuple[bytes, ...]:
    return tuple(
        seal_derived(content_key, key, info_of(i), ephemeral_seed(content_key, info_of(i)))
        for i, key in enumerate(keys)
    )


def seal_body(
    chain_id: bytes,
    sender: bytes,
    nonce: int,
    body: TxBody,
    encryption_keys: Sequence[bytes],
    *,
    content_key: bytes,
) -> SealedTx:
    """The sealed form of ``body`` for the envelope (``sender``, ``nonce``) on this chain.

    ``content_key`` is 32 fresh random bytes, drawn by the caller (``os.urandom`` in the
    wallet, the seeded generator in the simulator): this module draws nothing, so the
    application can import it and stay pure.  A content key must never be used twice.
    """
    if not 1 <= len(encryption_keys) <= MAX_SEALED_RECIPIENTS:
        raise GridchainError(f"seal to 1-{MAX_SEALED_RECIPIENTS} keys, got {len(encryption_keys)}")
    if isinstance(body, SealedTx):
        raise SealedMismatchError("a sealed body is not sealed again")
    if isinstance(body, PUBLIC_ONLY):
        raise SealedKindError(f"a {type(body).__name__} is public and is never sealed")
    keys = [
        check_x25519_public_key(k, what=f"encryption key {i}")
        for i, k in enumerate(encryption_keys)
    ]
    if len(content_key) != KEY_BYTES:
        raise GridchainError(f"a content key is {KEY_BYTES} bytes")
    key = content_key
    plaintext = TxPayload(sender, nonce, body).encode()
    ciphertext = ChaCha20Poly1305(key).encrypt(
        _BODY_NONCE, plaintext, body_aad(chain_id, sender, nonce)
    )
    key_set = key_set_hash(encryption_keys)
    wraps = _wraps(
        key,
        keys,
        lambda i: wrap_info(chain_id, sender, nonce, ciphertext, index=i, key_set=key_set),
    )
    return SealedTx(key_set=key_set, wrapped_keys=wraps, ciphertext=ciphertext)


def seal_tx(
    key: SigningKey,
    chain_id: bytes,
    nonce: int,
    body: TxBody,
    encryption_keys: Sequence[bytes],
    *,
    content_key: bytes,
) -> Transaction:
    """A signed transaction whose body only the validators holding ``encryption_keys`` read."""
    sealed = seal_body(
        chain_id, key.public_key, nonce, body, encryption_keys, content_key=content_key
    )
    return sign_tx(key, chain_id, nonce, sealed)


class Opener(Protocol):
    """What execution needs from a validator's private encryption key: its own wrap opened.

    Passed into the (pure) application from node/, so market/ holds no key and reads no file.
    """

    def unwrap(self, wrapped_keys: Sequence[bytes], info_of: Callable[[int], bytes]) -> bytes:
        """The content key in this validator's wrap, or raise SealedUnopenedError."""
        ...


@dataclass(frozen=True, slots=True)
class ValidatorOpener:
    """The opener of validator ``index`` (its position in genesis) holding ``private_key``."""

    private_key: X25519PrivateKey
    index: int

    def unwrap(self, wrapped_keys: Sequence[bytes], info_of: Callable[[int], bytes]) -> bytes:
        if self.index >= len(wrapped_keys):
            raise SealedUnopenedError("no wrapped key for this validator")
        try:
            return open_sealed(wrapped_keys[self.index], self.private_key, info_of(self.index))
        except OpenError:
            raise SealedUnopenedError("this validator's wrapped key does not open") from None


@dataclass(frozen=True, slots=True)
class SealContext:
    """The chain's side of opening: its id and the validators' encryption keys (genesis)."""

    chain_id: bytes
    encryption_keys: tuple[bytes, ...]

    @property
    def key_set(self) -> bytes:
        return key_set_hash(self.encryption_keys)

    def public_keys(self) -> tuple[X25519PublicKey, ...]:
        return tuple(X25519PublicKey.from_public_bytes(k) for k in self.encryption_keys)


def sealed_to(body: SealedTx, seal: SealContext) -> bool:
    """Whether ``body`` is sealed to exactly this chain's validators (names their key set and
    carries one wrap each).  Needs no private key: a gateway or mempool can check it."""
    return body.key_set == seal.key_set and len(body.wrapped_keys) == len(seal.encryption_keys)


def open_tx(tx: Transaction, seal: SealContext, opener: Opener) -> TxBody:
    """The inner body of sealed ``tx``, or a :class:`SealedRefusedError` that every validator gives.

    The caller has checked the envelope's signature and :func:`sealed_to` (structural checks,
    refused before execution).
    """
    body = tx.body
    if not isinstance(body, SealedTx):
        raise TypeError(f"open_tx takes a sealed transaction, not {tx.kind}")
    key_set = seal.key_set

    def info_of(i: int) -> bytes:
        return wrap_info(
            seal.chain_id, tx.sender, tx.nonce, body.ciphertext, index=i, key_set=key_set
        )

    content_key = opener.unwrap(body.wrapped_keys, info_of)
    if len(content_key) != KEY_BYTES:
        raise InconsistentWrapsError("a wrapped key is not a 32-byte content key")
    if _wraps(content_key, seal.public_keys(), info_of) != body.wrapped_keys:
        raise InconsistentWrapsError("the wrapped keys are not all the sealing of one key")
    try:
        plaintext = ChaCha20Poly1305(content_key).decrypt(
            _BODY_NONCE, body.ciphertext, body_aad(seal.chain_id, tx.sender, tx.nonce)
        )
        inner = decode(plaintext, TxPayload, max_bytes=MAX_TX_BYTES)
    except InvalidTag:
        raise SealedBodyError("the body does not open under its content key") from None
    except DecodeError as exc:
        raise SealedBodyError(f"the body is not a transaction payload: {exc.message}") from None
    if inner.sender != tx.sender or inner.nonce != tx.nonce:
        raise SealedMismatchError("the inner sender or nonce differs from the envelope's")
    if isinstance(inner.body, SealedTx):
        raise SealedMismatchError("a sealed body is not sealed again")
    if isinstance(inner.body, PUBLIC_ONLY):
        raise SealedKindError(f"a {type(inner.body).__name__} is public and is never sealed")
    return inner.body
