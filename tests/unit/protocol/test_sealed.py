"""Sealing a transaction body to the validator set (protocol/sealed.py): every validator opens
the same body; a wrong key, a wrap moved to another envelope, inconsistent wraps or an inner
payload that disagrees with its envelope are refused by every validator alike."""

from __future__ import annotations

from collections.abc import Callable

import msgpack
import pytest
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from gridchain.protocol import sealed as s
from gridchain.protocol.crypto import sha256
from gridchain.protocol.errors import GridchainError
from gridchain.protocol.hpke import seal_derived
from gridchain.protocol.tx import (
    Burn,
    Mint,
    PlaceOrder,
    RegisterMeter,
    RegisterParticipant,
    SealedTx,
    Transaction,
    Transfer,
    TxBody,
    TxPayload,
    decode_tx,
    sign_tx,
)
from tests.helpers import det_encryption_key, sealing_bundle, validator_openers

BUNDLE = sealing_bundle(4)
CHAIN = BUNDLE.genesis.chain_id
KEYS = BUNDLE.genesis.encryption_keys()
SEAL = s.SealContext(CHAIN, KEYS)
OPENERS = validator_openers(BUNDLE)
ALICE, BOB = BUNDLE.participants[0].key, BUNDLE.participants[1].key
#: Distinctive values whose encodings cannot appear in ciphertext by chance.
PRICE, QUANTITY = 123_456_789, 987_654_321
ORDER = PlaceOrder(1, 1_893_456, 0, 3, PRICE, QUANTITY, 0, 0)


def content_key(label: str) -> bytes:
    return sha256(label.encode())


def sealed_order(nonce: int = 0, label: str = "k") -> Transaction:
    return s.seal_tx(ALICE, CHAIN, nonce, ORDER, KEYS, content_key=content_key(label))


def verdicts(tx: Transaction) -> list[object]:
    """What each validator makes of ``tx``: the inner body or the refusal's type."""
    out: list[object] = []
    for opener in OPENERS:
        try:
            out.append(s.open_tx(tx, SEAL, opener))
        except s.SealedRefusedError as exc:
            out.append(type(exc))
    return out


def test_every_validator_opens_the_same_body() -> None:
    tx = sealed_order()
    tx.verify_signature(CHAIN)
    assert verdicts(tx) == [ORDER] * 4
    assert decode_tx(tx.encode()) == tx


def test_the_envelope_bytes_do_not_carry_the_price_or_quantity() -> None:
    """The order's encoding, and each of its price and quantity as msgpack writes them, is in
    the plain transaction's bytes and in none of the sealed one's."""
    plain = sign_tx(ALICE, CHAIN, 0, ORDER).encode()
    sealed = sealed_order().encode()
    needles = [ORDER.encode(), msgpack.packb(PRICE), msgpack.packb(QUANTITY)]
    assert all(n in plain for n in needles)
    assert not any(n in sealed for n in needles)


def test_the_outer_envelope_is_checkable_without_a_private_key() -> None:
    tx = decode_tx(sealed_order(nonce=7).encode())
    assert tx.sender == ALICE.public_key
    assert tx.nonce == 7
    assert tx.kind == "SealedTx"
    tx.verify_signature(CHAIN)
    assert isinstance(tx.body, SealedTx)
    assert tx.body.key_set == s.key_set_hash(KEYS)


def test_a_key_that_is_not_the_validators_cannot_open() -> None:
    stranger = s.ValidatorOpener(det_encryption_key("stranger"), 0)
    with pytest.raises(s.SealedUnopenedError):
        s.open_tx(sealed_order(), SEAL, stranger)


def test_a_wrapped_key_moved_to_another_envelope_is_refused_by_all() -> None:
    """Bob copies Alice's sealed body (wraps and ciphertext) into his own signed envelope."""
    stolen = sealed_order().body
    assert isinstance(stolen, SealedTx)
    moved = sign_tx(BOB, CHAIN, 0, stolen)
    assert verdicts(moved) == [s.SealedUnopenedError] * 4


def test_a_wrapped_key_moved_to_another_nonce_is_refused_by_all() -> None:
    body = sealed_order(nonce=3).body
    assert isinstance(body, SealedTx)
    assert verdicts(sign_tx(ALICE, CHAIN, 4, body)) == [s.SealedUnopenedError] * 4


def test_one_wrap_moved_from_another_sealing_is_refused_by_all() -> None:
    body, other = sealed_order(label="a").body, sealed_order(label="b").body
    assert isinstance(body, SealedTx)
    assert isinstance(other, SealedTx)
    mixed = SealedTx(body.key_set, (*body.wrapped_keys[:3], other.wrapped_keys[3]), body.ciphertext)
    # Validator 3's wrap names another ciphertext and does not open; the other three open the
    # content key, recompute wrap 3 and find it differs: a refusal everywhere.
    assert verdicts(sign_tx(ALICE, CHAIN, 0, mixed)) == [s.InconsistentWrapsError] * 3 + [
        s.SealedUnopenedError
    ]


def _forge(
    payload: bytes, *, nonce: int, wrap_key: Callable[[int], bytes], key: bytes
) -> Transaction:
    """A sealed envelope by Alice with ``nonce`` whose body is ``payload`` under ``key`` and
    whose wrap i carries ``wrap_key(i)`` (correctly bound to this envelope)."""
    ciphertext = ChaCha20Poly1305(key).encrypt(
        bytes(12), payload, s.body_aad(CHAIN, ALICE.public_key, nonce)
    )
    key_set = s.key_set_hash(KEYS)

    def info_of(i: int) -> bytes:
        return s.wrap_info(CHAIN, ALICE.public_key, nonce, ciphertext, index=i, key_set=key_set)

    wraps: list[bytes] = []
    for i, pk in enumerate(SEAL.public_keys()):
        k = wrap_key(i)
        wraps.append(seal_derived(k, pk, info_of(i), s.ephemeral_seed(k, info_of(i))))
    return sign_tx(ALICE, CHAIN, nonce, SealedTx(key_set, tuple(wraps), ciphertext))


def test_wraps_of_different_keys_are_refused_by_every_validator() -> None:
    """A sender gives validator 2 another content key: if each validator only opened its own
    wrap, validator 2 would read something else (or nothing) and the chain would fork.  The
    recomputation makes all four refuse."""
    good, evil = content_key("good"), content_key("evil")
    payload = TxPayload(ALICE.public_key, 0, ORDER).encode()
    tx = _forge(payload, nonce=0, wrap_key=lambda i: evil if i == 2 else good, key=good)
    assert verdicts(tx) == [s.InconsistentWrapsError] * 4


@pytest.mark.parametrize(
    ("sender", "nonce"), [(b"\x01" * 32, 0), (None, 1)], ids=["other-sender", "other-nonce"]
)
def test_an_inner_payload_that_disagrees_with_its_envelope_is_refused(
    sender: bytes | None, nonce: int
) -> None:
    inner = TxPayload(ALICE.public_key if sender is None else sender, nonce, ORDER)
    key = content_key("mismatch")
    tx = _forge(inner.encode(), nonce=0, wrap_key=lambda _: key, key=key)
    assert verdicts(tx) == [s.SealedMismatchError] * 4


def test_a_sealed_body_inside_a_sealed_body_is_refused() -> None:
    inner_sealed = sealed_order().body
    key = content_key("nested")
    payload = TxPayload(ALICE.public_key, 0, inner_sealed).encode()
    tx = _forge(payload, nonce=0, wrap_key=lambda _: key, key=key)
    assert verdicts(tx) == [s.SealedMismatchError] * 4


def test_a_body_that_is_not_a_payload_is_refused() -> None:
    key = content_key("garbage")
    tx = _forge(Transfer(b"\x02" * 20, 5).encode(), nonce=0, wrap_key=lambda _: key, key=key)
    assert verdicts(tx) == [s.SealedBodyError] * 4


def test_a_ciphertext_altered_after_sealing_is_refused() -> None:
    body = sealed_order().body
    assert isinstance(body, SealedTx)
    flipped = bytes([body.ciphertext[0] ^ 1]) + body.ciphertext[1:]
    tampered = sign_tx(ALICE, CHAIN, 0, SealedTx(body.key_set, body.wrapped_keys, flipped))
    # The wraps are bound to the ciphertext's hash: nobody's wrap opens any more.
    assert verdicts(tampered) == [s.SealedUnopenedError] * 4


def test_sealing_checks_its_keys_and_content_key() -> None:
    with pytest.raises(GridchainError):
        s.seal_body(CHAIN, ALICE.public_key, 0, ORDER, KEYS, content_key=b"short")
    with pytest.raises(GridchainError):
        s.seal_body(CHAIN, ALICE.public_key, 0, ORDER, (bytes(32),), content_key=content_key("x"))
    with pytest.raises(s.SealedMismatchError):
        s.seal_body(CHAIN, ALICE.public_key, 0, sealed_order().body, KEYS, content_key=bytes(32))


def test_sealed_to_checks_the_key_set_and_wrap_count_without_a_private_key() -> None:
    body = sealed_order().body
    assert isinstance(body, SealedTx)
    assert s.sealed_to(body, SEAL)
    assert not s.sealed_to(body, s.SealContext(CHAIN, KEYS[:3]))
    assert not s.sealed_to(SealedTx(body.key_set, body.wrapped_keys[:3], body.ciphertext), SEAL)
    assert not s.sealed_to(SealedTx(bytes(32), body.wrapped_keys, body.ciphertext), SEAL)


@pytest.mark.parametrize(
    "body",
    [
        RegisterParticipant(b"\x05" * 32, "eve"),
        Mint(b"\x02" * 20, 5),
        Burn(b"\x02" * 20, 5),
        RegisterMeter("m-1", b"\x02" * 20, 1, b"\x05" * 32, "generic"),
    ],
    ids=lambda b: type(b).__name__,
)
def test_public_kinds_are_never_sealed(body: TxBody) -> None:
    """Registrations and the money supply stay public: a follower reading envelopes only must
    know who is registered.  The sealer refuses them and so does every validator."""
    with pytest.raises(s.SealedKindError):
        s.seal_body(CHAIN, ALICE.public_key, 0, body, KEYS, content_key=content_key("p"))
    key = content_key("public")
    payload = TxPayload(ALICE.public_key, 0, body).encode()
    tx = _forge(payload, nonce=0, wrap_key=lambda _: key, key=key)
    assert verdicts(tx) == [s.SealedKindError] * 4
