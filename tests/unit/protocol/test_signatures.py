"""Signatures: what exactly is signed, and that a signature is good for one purpose only.

Why: a signature that verified under another domain would let an attacker replay a validator's
vote as a transaction (or a meter reading as a handshake); one that verified on another chain id
would let a test-net transaction be replayed on the production chain; and a transaction whose
fields could change without breaking its signature would let anyone relaying it rewrite it.
The byte layout is tested literally because other implementations must produce the same bytes.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st

from gridchain.protocol.block import Certificate, Vote
from gridchain.protocol.crypto import Domain, SigningKey, sha256, sign_bytes, verify
from gridchain.protocol.errors import BadKeyError, SignatureError
from gridchain.protocol.tx import (
    Burn,
    Mint,
    RegisterParticipant,
    Transaction,
    Transfer,
    TxBody,
    sign_tx,
)

KEY_A = SigningKey(bytes(range(32)))
KEY_B = SigningKey(sha256(b"gridchain test key 1"))
CHAIN_A = sha256(b"gridchain test chain")
CHAIN_B = sha256(b"gridchain other chain")
PAYLOAD = b"\x95\x01\x01some canonical bytes"

#: The group order of Ed25519; S + L is the classic malleated signature.
ED25519_L = 2**252 + 27742317777372353535851937790883648493

BODIES: list[TxBody] = [
    Transfer(b"\x11" * 20, 5_000, "for the battery"),
    RegisterParticipant(KEY_B.public_key, "bakery on 3rd street"),
    Mint(b"\x22" * 20, 1_000_000),
    Burn(b"\x33" * 20, 42),
]

# --- sign_bytes layout -----------------------------------------------------------------------

#: Domain tags are part of every signed message; these literals are the spec.
DOMAIN_BYTES = {
    Domain.TX: b"tx",
    Domain.BLOCK: b"block",
    Domain.VOTE: b"vote",
    Domain.METER_READING: b"meter-reading",
    Domain.HANDSHAKE: b"handshake",
    Domain.SEALED_READ: b"sealed-read",
}


def test_domains_are_pinned() -> None:
    """Adding, renaming or re-spelling a domain is a protocol change the spec must record."""
    assert {d: d.value for d in Domain} == DOMAIN_BYTES


@pytest.mark.parametrize("domain", list(Domain), ids=lambda d: d.name)
def test_sign_bytes_layout(domain: Domain) -> None:
    """``"gridchain/v1/" || domain || 0x00 || chain_id (32 bytes) || payload``."""
    expected = b"gridchain/v1/" + DOMAIN_BYTES[domain] + b"\x00" + CHAIN_A + PAYLOAD
    assert sign_bytes(domain, CHAIN_A, PAYLOAD) == expected


def test_sign_bytes_of_tx_literal() -> None:
    """One fully literal example, so the layout is visible without reading code."""
    chain = bytes(range(32))
    assert sign_bytes(Domain.TX, chain, b"\xab").hex() == (
        "67726964636861696e2f76312f7478"  # "gridchain/v1/tx"
        "00"
        "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
        "ab"
    )


def test_domain_prefixes_are_prefix_free() -> None:
    """No domain's signed prefix starts another's, so no two (domain, payload) pairs collide.

    This holds because domain tags contain no zero byte and the zero byte ends them.
    """
    for domain in Domain:
        assert b"\x00" not in domain.value
    prefixes = {d: sign_bytes(d, CHAIN_A, b"") for d in Domain}
    for d1, d2 in itertools.permutations(Domain, 2):
        assert not prefixes[d2].startswith(prefixes[d1])


@pytest.mark.parametrize("length", [0, 20, 31, 33, 64])
def test_chain_id_must_be_32_bytes(length: int) -> None:
    with pytest.raises(BadKeyError):
        sign_bytes(Domain.TX, b"\x01" * length, PAYLOAD)
    with pytest.raises(BadKeyError):
        KEY_A.sign(Domain.TX, b"\x01" * length, PAYLOAD)


def test_signature_is_plain_ed25519_over_sign_bytes() -> None:
    """Any Ed25519 library verifying sign_bytes(...) accepts our signatures: no hidden hashing."""
    signature = KEY_A.sign(Domain.VOTE, CHAIN_A, PAYLOAD)
    Ed25519PublicKey.from_public_bytes(KEY_A.public_key).verify(
        signature, sign_bytes(Domain.VOTE, CHAIN_A, PAYLOAD)
    )


def test_signatures_are_deterministic() -> None:
    """RFC 8032 signing has no randomness, so one payload gives one transaction hash."""
    assert KEY_A.sign(Domain.TX, CHAIN_A, PAYLOAD) == KEY_A.sign(Domain.TX, CHAIN_A, PAYLOAD)
    tx1 = sign_tx(KEY_A, CHAIN_A, 1, BODIES[0])
    tx2 = sign_tx(KEY_A, CHAIN_A, 1, BODIES[0])
    assert tx1.hash() == tx2.hash()


def test_rfc8032_key_derivation() -> None:
    """RFC 8032 section 7.1, test 1: the seed-to-public-key step is standard Ed25519."""
    key = SigningKey.from_hex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
    assert key.public_key.hex() == (
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
    )


# --- domain and chain separation -------------------------------------------------------------


@pytest.mark.parametrize(
    ("signed_for", "checked_as"),
    list(itertools.permutations(Domain, 2)),
    ids=lambda d: d.name,
)
def test_signature_for_one_domain_does_not_verify_for_another(
    signed_for: Domain, checked_as: Domain
) -> None:
    signature = KEY_A.sign(signed_for, CHAIN_A, PAYLOAD)
    assert verify(KEY_A.public_key, signature, signed_for, CHAIN_A, PAYLOAD)
    assert not verify(KEY_A.public_key, signature, checked_as, CHAIN_A, PAYLOAD)


def test_vote_signature_is_not_a_transaction_signature() -> None:
    """The concrete replay: a validator's vote bytes offered as a transaction payload."""
    vote = Vote(1, 0, b"\x07" * 32, 2)
    vote_sig = vote.sign(KEY_A, CHAIN_A)
    assert not verify(KEY_A.public_key, vote_sig.signature, Domain.TX, CHAIN_A, vote.encode())


@pytest.mark.parametrize("domain", list(Domain), ids=lambda d: d.name)
def test_signature_for_one_chain_does_not_verify_for_another(domain: Domain) -> None:
    signature = KEY_A.sign(domain, CHAIN_A, PAYLOAD)
    assert verify(KEY_A.public_key, signature, domain, CHAIN_A, PAYLOAD)
    assert not verify(KEY_A.public_key, signature, domain, CHAIN_B, PAYLOAD)


@settings(max_examples=25, deadline=None)
@given(
    chain_a=st.binary(min_size=32, max_size=32),
    chain_b=st.binary(min_size=32, max_size=32),
)
def test_transaction_is_bound_to_its_chain(chain_a: bytes, chain_b: bytes) -> None:
    tx = sign_tx(KEY_A, chain_a, 3, BODIES[0])
    tx.verify_signature(chain_a)
    if chain_a != chain_b:
        with pytest.raises(SignatureError):
            tx.verify_signature(chain_b)


# --- tampering -------------------------------------------------------------------------------


def _tweak(value: Any) -> Any:
    """A different value of the same type (so the record still encodes)."""
    if isinstance(value, bytes):
        return bytes([value[0] ^ 0x01]) + value[1:]
    if isinstance(value, int):
        return value + 1 if value == 0 else value - 1
    if isinstance(value, str):
        return value[:-1] + ("x" if value[-1:] != "x" else "y")
    raise AssertionError(f"cannot tweak {value!r}")


def _tampered(tx: Transaction) -> list[tuple[str, Transaction]]:
    """Every single-field change to a transaction, including inside its body."""
    out: list[tuple[str, Transaction]] = [
        ("sender", dataclasses.replace(tx, sender=KEY_B.public_key)),
        ("nonce", dataclasses.replace(tx, nonce=_tweak(tx.nonce))),
    ]
    for f in dataclasses.fields(tx.body):
        body = dataclasses.replace(tx.body, **{f.name: _tweak(getattr(tx.body, f.name))})
        out.append((f"body.{f.name}", dataclasses.replace(tx, body=body)))
    # The same field values under another body type (a Burn where a Transfer was signed).
    if isinstance(tx.body, Transfer):
        out.append(("body-type", dataclasses.replace(tx, body=Mint(tx.body.to, tx.body.amount_mc))))
    if isinstance(tx.body, Mint):
        out.append(("body-type", dataclasses.replace(tx, body=Burn(tx.body.to, tx.body.amount_mc))))
    return out


@pytest.mark.parametrize("body", BODIES, ids=lambda b: type(b).__name__)
def test_tampering_any_transaction_field_breaks_the_signature(body: TxBody) -> None:
    tx = sign_tx(KEY_A, CHAIN_A, 9, body)
    tx.verify_signature(CHAIN_A)
    cases = _tampered(tx)
    assert len(cases) >= 2 + len(dataclasses.fields(body))
    for name, bad in cases:
        assert bad != tx, name
        with pytest.raises(SignatureError):
            bad.verify_signature(CHAIN_A)


@settings(max_examples=30, deadline=None)
@given(
    to=st.binary(min_size=20, max_size=20),
    amount=st.integers(0, 2**64 - 1),
    memo=st.text(alphabet=st.characters(codec="utf-8"), max_size=140),
    nonce=st.integers(0, 2**64 - 1),
)
def test_tampering_random_transfers_breaks_the_signature(
    to: bytes, amount: int, memo: str, nonce: int
) -> None:
    tx = sign_tx(KEY_A, CHAIN_A, nonce, Transfer(to, amount, memo))
    tx.verify_signature(CHAIN_A)
    for _, bad in _tampered(tx):
        with pytest.raises(SignatureError):
            bad.verify_signature(CHAIN_A)


def test_flipping_any_signature_byte_breaks_it() -> None:
    tx = sign_tx(KEY_A, CHAIN_A, 1, BODIES[0])
    for i in range(64):
        sig = bytearray(tx.signature)
        sig[i] ^= 0x80
        with pytest.raises(SignatureError):
            dataclasses.replace(tx, signature=bytes(sig)).verify_signature(CHAIN_A)


def test_malleated_signature_is_refused() -> None:
    """S + L is a second valid-looking signature; accepting it would give a tx two hashes."""
    tx = sign_tx(KEY_A, CHAIN_A, 1, BODIES[0])
    s = int.from_bytes(tx.signature[32:], "little")
    malleated = tx.signature[:32] + (s + ED25519_L).to_bytes(32, "little")
    with pytest.raises(SignatureError):
        dataclasses.replace(tx, signature=malleated).verify_signature(CHAIN_A)


@pytest.mark.parametrize(
    ("public_key", "signature"),
    [
        (b"\xff" * 32, None),  # not a curve point
        (b"\x00" * 31, None),
        (None, b"\x00" * 64),
        (None, b"\x00" * 63),
        (None, b""),
    ],
    ids=["bad-point", "short-key", "zero-sig", "short-sig", "empty-sig"],
)
def test_verify_returns_false_for_garbage(
    public_key: bytes | None, signature: bytes | None
) -> None:
    """Peers send garbage; verify() answers False rather than raising."""
    good = KEY_A.sign(Domain.TX, CHAIN_A, PAYLOAD)
    assert not verify(
        public_key if public_key is not None else KEY_A.public_key,
        signature if signature is not None else good,
        Domain.TX,
        CHAIN_A,
        PAYLOAD,
    )


# --- certificates ----------------------------------------------------------------------------

VOTE = Vote(5, 1, b"\x0b" * 32, 2)
VALIDATORS = [SigningKey(sha256(b"validator %d" % i)) for i in range(4)]
VALIDATOR_KEYS = {v.public_key for v in VALIDATORS}


def _certificate(vote: Vote, signers: list[SigningKey], chain_id: bytes = CHAIN_A) -> Certificate:
    return Certificate(vote, tuple(vote.sign(k, chain_id) for k in signers))


def test_certificate_with_quorum_verifies() -> None:
    _certificate(VOTE, VALIDATORS[:3]).verify(CHAIN_A, VALIDATOR_KEYS, quorum=3)
    _certificate(VOTE, VALIDATORS).verify(CHAIN_A, VALIDATOR_KEYS, quorum=3)


GOOD_CERT = _certificate(VOTE, VALIDATORS[:3])


@pytest.mark.parametrize(
    "cert",
    [
        pytest.param(_certificate(VOTE, VALIDATORS[:3], CHAIN_B), id="other-chain"),
        pytest.param(
            dataclasses.replace(GOOD_CERT, vote=dataclasses.replace(VOTE, height=6)),
            id="other-height",
        ),
        pytest.param(
            dataclasses.replace(GOOD_CERT, vote=dataclasses.replace(VOTE, step=1)),
            id="prepare-for-commit",
        ),
        pytest.param(
            _certificate(VOTE, [VALIDATORS[0], VALIDATORS[0], VALIDATORS[1]]),
            id="duplicate-signer",
        ),
        pytest.param(_certificate(VOTE, [*VALIDATORS[:2], KEY_A]), id="non-validator"),
        pytest.param(_certificate(VOTE, VALIDATORS[:2]), id="below-quorum"),
    ],
)
def test_bad_certificates_are_refused(cert: Certificate) -> None:
    """A certificate is what lets a lagging node trust a fetched block: every flaw must show."""
    with pytest.raises(SignatureError):
        cert.verify(CHAIN_A, VALIDATOR_KEYS, quorum=3)


# --- the private key stays private -----------------------------------------------------------


def test_signing_key_repr_hides_the_secret() -> None:
    """Keys end up in log lines and tracebacks; only the public half may appear there."""
    seed = bytes(range(32))
    key = SigningKey(seed)
    for shown in (repr(key), str(key), f"{key}", f"{key!r}", repr([key])):
        assert seed.hex() not in shown
        assert seed.hex().upper() not in shown
        assert repr(seed) not in shown
        assert key.public_key.hex() in shown


def test_signing_key_has_no_instance_dict() -> None:
    """__slots__: vars() and naive serialisers cannot dump the key object's internals."""
    with pytest.raises(TypeError):
        vars(SigningKey(bytes(range(32))))


def test_signing_key_from_hex_round_trip() -> None:
    key = SigningKey.from_hex(" " + bytes(range(32)).hex() + "\n")
    assert key.seed == bytes(range(32))
    assert key.public_key == KEY_A.public_key


@pytest.mark.parametrize("text", ["", "zz" * 32, "00" * 31, "00" * 33])
def test_signing_key_from_bad_hex_is_refused(text: str) -> None:
    with pytest.raises(BadKeyError):
        SigningKey.from_hex(text)


@pytest.mark.parametrize("length", [0, 31, 33, 64])
def test_signing_key_needs_a_32_byte_seed(length: int) -> None:
    with pytest.raises(BadKeyError):
        SigningKey(b"\x01" * length)


def test_generated_keys_differ_and_sign() -> None:
    k1, k2 = SigningKey.generate(), SigningKey.generate()
    assert k1.public_key != k2.public_key
    assert verify(k1.public_key, k1.sign(Domain.TX, CHAIN_A, PAYLOAD), Domain.TX, CHAIN_A, PAYLOAD)
