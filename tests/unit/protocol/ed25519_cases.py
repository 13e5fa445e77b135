"""Builds the Ed25519 edge-case vectors of docs/spec/ed25519_vectors.json from first principles.

Every input is derived here, never typed in, except RFC 8032's own test vectors (section 7.1,
TEST 1-3), which are copied from the RFC and checked by re-signing them.  The small-order
points come from protocol.edwards (found on the curve as [k][L]Q); the signatures by them are
the classic forgery (R = identity, S = 0) on a message searched so that the cofactorless
equation [S]B = R + [k]A holds, i.e. [k]A = identity.  Signatures with a small-order R or a
non-canonical S are made with key "a"'s real secret scalar (RFC 8032 5.1.5, done by hand so R
and S can be chosen).

``openssl_accepts`` is what ``cryptography`` (OpenSSL) says on its own, ``gridchain_accepts``
what protocol.crypto.verify_message says; the difference is the point of ADR 0021.

Run ``python -m tests.unit.protocol.ed25519_cases`` to print the JSON (writes nothing).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gridchain.protocol import edwards
from gridchain.protocol.crypto import SigningKey, verify_message

#: RFC 8032 section 7.1, TEST 1, TEST 2 and TEST 3: (secret key, public key, message, signature).
RFC8032_TESTS: tuple[tuple[str, str, str, str, str], ...] = (
    (
        "rfc8032_test_1",
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
        "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "rfc8032_test_2",
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
        "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
    (
        "rfc8032_test_3",
        "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac"
        "18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
    ),
)

#: Key "a" of docs/spec/vectors.json (seed bytes 0x00..0x1f).
SEED_A = bytes(range(32))
MESSAGE_A = b"gridchain edge case"
IDENTITY_ENCODING = edwards.encode(edwards.IDENTITY)


def _h(*parts: bytes) -> int:
    return int.from_bytes(hashlib.sha512(b"".join(parts)).digest(), "little")


def secret_scalar(seed: bytes) -> int:
    """RFC 8032 5.1.5 steps 1-2: the clamped scalar a of a seed."""
    h = hashlib.sha512(seed).digest()
    a = int.from_bytes(h[:32], "little")
    a &= (1 << 254) - 8
    a |= 1 << 254
    return a


def sign_with_r(seed: bytes, r_encoding: bytes, message: bytes) -> bytes:
    """A signature (R, S = k*a mod L) with R chosen by the caller instead of derived.

    For R = identity this satisfies [S]B = R + [k]A exactly (a cofactorless verifier accepts
    it); for another small-order R only the cofactored equation [8][S]B = [8]R + [8][k]A holds.
    """
    public = SigningKey(seed).public_key
    k = _h(r_encoding, public, message) % edwards.L
    s = k * secret_scalar(seed) % edwards.L
    return r_encoding + s.to_bytes(32, "little")


def lenient_point(raw: bytes) -> edwards.Point:
    """The point a non-canonical encoding names (y mod p, x's sign ignored when x = 0)."""
    value = int.from_bytes(raw, "little")
    y, sign = value & ((1 << 255) - 1), value >> 255
    point = edwards.point_from_y(y, sign) or edwards.point_from_y(y, 0)
    assert point is not None, raw.hex()
    return point


def forgery_message(key_encoding: bytes, label: str) -> bytes:
    """The first message ``label/i`` on which (identity, 0) satisfies the cofactorless
    equation for this key: [k]A = identity with k = H(R || A || M)."""
    point = lenient_point(key_encoding)
    for i in range(1000):
        message = f"{label}/{i}".encode()
        k = _h(IDENTITY_ENCODING, key_encoding, message) % edwards.L
        if edwards.is_identity(edwards.multiply(k, point)):
            return message
    raise AssertionError(f"no forgery message for {key_encoding.hex()}")


def openssl_accepts(public_key: bytes, signature: bytes, message: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def _case(
    name: str, what: str, public_key: bytes, message: bytes, signature: bytes
) -> dict[str, Any]:
    defect = edwards.key_defect(public_key)
    return {
        "name": name,
        "what": what,
        "public_key": public_key.hex(),
        "message": message.hex(),
        "signature": signature.hex(),
        "key_check": "ok" if defect is None else defect.value,
        "openssl_accepts": openssl_accepts(public_key, signature, message),
        "gridchain_accepts": verify_message(public_key, signature, message),
    }


def build_cases() -> list[dict[str, Any]]:
    cases = [
        _case(
            name, "RFC 8032 section 7.1", bytes.fromhex(pk), bytes.fromhex(msg), bytes.fromhex(sig)
        )
        for name, _, pk, msg, sig in RFC8032_TESTS
    ]
    forged_sig = IDENTITY_ENCODING + bytes(32)
    canonical = edwards.small_order_points()
    for i, enc in enumerate(canonical):
        message = forgery_message(enc, f"small-order key {i}")
        cases.append(
            _case(
                f"small_order_key_{i}",
                f"[{i}]T for T of order 8, canonical; forgery (R = identity, S = 0)",
                enc,
                message,
                forged_sig,
            )
        )
    for j, enc in enumerate(sorted(edwards.small_order_encodings() - set(canonical))):
        message = forgery_message(enc, f"non-canonical small-order key {j}")
        cases.append(
            _case(
                f"non_canonical_small_order_key_{j}",
                "a non-canonical encoding of a small-order point; forgery (R = identity, S = 0)",
                enc,
                message,
                forged_sig,
            )
        )
    key_a = SigningKey(SEED_A)
    good = key_a._key.sign(MESSAGE_A)
    cases.append(_case("key_a_valid", "key a's own signature", key_a.public_key, MESSAGE_A, good))
    s_plus_l = int.from_bytes(good[32:], "little") + edwards.L
    cases.append(
        _case(
            "non_canonical_s",
            "key a's signature with S + L (S >= L)",
            key_a.public_key,
            MESSAGE_A,
            good[:32] + s_plus_l.to_bytes(32, "little"),
        )
    )
    cases.append(
        _case(
            "small_order_r_identity",
            "key a, R = identity, S = k*a: the cofactorless equation holds",
            key_a.public_key,
            MESSAGE_A,
            sign_with_r(SEED_A, IDENTITY_ENCODING, MESSAGE_A),
        )
    )
    cases.append(
        _case(
            "small_order_r_order_8",
            "key a, R of order 8, S = k*a: only the cofactored equation holds",
            key_a.public_key,
            MESSAGE_A,
            sign_with_r(SEED_A, canonical[1], MESSAGE_A),
        )
    )
    off_curve = next(
        y.to_bytes(32, "little") for y in range(2, 100) if edwards.point_from_y(y) is None
    )
    cases.append(_case("key_not_on_curve", "y with no x on the curve", off_curve, MESSAGE_A, good))
    return cases


def build_document() -> dict[str, Any]:
    return {
        "about": (
            "Ed25519 edge cases and gridchain's accept/reject table (ADR 0021). Hex fields; "
            "message is the raw signed bytes. key_check is protocol.edwards.key_defect "
            "('ok' or the defect); openssl_accepts is OpenSSL's own answer (cryptography), "
            "gridchain_accepts protocol.crypto.verify_message's. Built by "
            "tests/unit/protocol/ed25519_cases.py; tests/unit/protocol/test_ed25519_vectors.py "
            "asserts this file equals it."
        ),
        "spec": "docs/spec/encoding.md",
        "small_order_points": [p.hex() for p in edwards.small_order_points()],
        "vectors": build_cases(),
    }


if __name__ == "__main__":
    print(json.dumps(build_document(), indent=2))
