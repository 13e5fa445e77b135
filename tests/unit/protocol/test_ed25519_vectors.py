"""The verifier's accept/reject table on Ed25519's edge cases, pinned (ADR 0021).

OpenSSL (what ``cryptography`` runs) accepts the forgery (R = identity, S = 0) by every one of
the 14 encodings of a small-order point on a suitable message, by the identity key on *any*
message.  gridchain refuses such keys wherever they are registered and in verify itself.  The
table below is typed in by hand; docs/spec/ed25519_vectors.json carries the same cases with
their bytes for other implementations, and must equal what ed25519_cases.py builds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gridchain.protocol import edwards
from gridchain.protocol.crypto import (
    Domain,
    SigningKey,
    check_public_key,
    sha256,
    verify,
    verify_message,
)
from gridchain.protocol.errors import (
    BadKeyError,
    KeyNotOnCurveError,
    NonCanonicalKeyError,
    SmallOrderKeyError,
)
from tests.unit.protocol.ed25519_cases import (
    IDENTITY_ENCODING,
    RFC8032_TESTS,
    build_document,
    openssl_accepts,
)

VECTORS_JSON = Path(__file__).resolve().parents[3] / "docs" / "spec" / "ed25519_vectors.json"

#: name -> (key_check, OpenSSL accepts, gridchain accepts).  Edit only on purpose.
TABLE: dict[str, tuple[str, bool, bool]] = {
    "rfc8032_test_1": ("ok", True, True),
    "rfc8032_test_2": ("ok", True, True),
    "rfc8032_test_3": ("ok", True, True),
    **{f"small_order_key_{i}": ("small_order", True, False) for i in range(8)},
    **{f"non_canonical_small_order_key_{j}": ("non_canonical", True, False) for j in range(6)},
    "key_a_valid": ("ok", True, True),
    "non_canonical_s": ("ok", False, False),
    "small_order_r_identity": ("ok", True, False),
    "small_order_r_order_8": ("ok", False, False),
    "key_not_on_curve": ("not_on_curve", False, False),
}

#: The order-8 points as listed in "Taming the many EdDSAs" (Chalkias et al.) and libsodium's
#: blocklist: a cross-check of the points protocol.edwards finds on the curve.
PUBLISHED_ORDER_8 = {
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(VECTORS_JSON.read_text(encoding="utf-8"))
    return loaded


def test_file_equals_what_the_builder_computes(document: dict[str, Any]) -> None:
    assert document == build_document()


def test_table_covers_every_vector(document: dict[str, Any]) -> None:
    assert [v["name"] for v in document["vectors"]] == list(TABLE)


@pytest.mark.parametrize("name", list(TABLE))
def test_accept_reject_table(document: dict[str, Any], name: str) -> None:
    vector = next(v for v in document["vectors"] if v["name"] == name)
    public_key = bytes.fromhex(vector["public_key"])
    signature = bytes.fromhex(vector["signature"])
    message = bytes.fromhex(vector["message"])
    key_check, by_openssl, by_gridchain = TABLE[name]
    defect = edwards.key_defect(public_key)
    assert (defect.value if defect else "ok") == key_check == vector["key_check"]
    assert openssl_accepts(public_key, signature, message) is by_openssl
    assert verify_message(public_key, signature, message) is by_gridchain
    assert vector["openssl_accepts"] is by_openssl
    assert vector["gridchain_accepts"] is by_gridchain


@pytest.mark.parametrize(("name", "secret", "public", "message", "signature"), RFC8032_TESTS)
def test_rfc8032_vectors_are_reproduced(
    name: str, secret: str, public: str, message: str, signature: str
) -> None:
    """The RFC's values were copied, so they are re-derived: a typo would fail here."""
    key = SigningKey(bytes.fromhex(secret))
    assert key.public_key.hex() == public, name
    assert key._key.sign(bytes.fromhex(message)).hex() == signature


def test_small_order_points_are_the_torsion_subgroup() -> None:
    points = edwards.small_order_points()
    assert len(set(points)) == 8
    assert points[0] == IDENTITY_ENCODING
    decoded = [edwards.decode(p) for p in points]
    for point in decoded:
        assert not isinstance(point, edwards.KeyDefect)
        assert edwards.is_identity(edwards.multiply(8, point))
    order_8 = {
        p.hex()
        for p, d in zip(points, decoded, strict=True)
        if not isinstance(d, edwards.KeyDefect) and not edwards.is_identity(edwards.multiply(4, d))
    }
    assert len(order_8) == 4
    assert order_8 >= PUBLISHED_ORDER_8
    assert len(edwards.small_order_encodings()) == 14


def test_the_byte_check_verify_uses_agrees_with_the_full_key_check() -> None:
    """verify skips the square root; it must refuse exactly the non-canonical and small-order
    keys, on every edge case and on strings that hit each branch."""
    weak = {edwards.KeyDefect.NON_CANONICAL, edwards.KeyDefect.SMALL_ORDER}
    non_canonical_y = [
        ((edwards.P + i) | (sign << 255)).to_bytes(32, "little")
        for i in range(19)
        for sign in (0, 1)
    ]
    samples = [
        *edwards.small_order_encodings(),
        *non_canonical_y,
        *(sha256(f"sample {i}".encode()) for i in range(300)),
    ]
    for raw in samples:
        assert edwards.refused_by_bytes(raw) is (edwards.key_defect(raw) in weak), raw.hex()


def test_honest_keys_pass_the_key_check() -> None:
    for i in range(50):
        key = SigningKey(sha256(f"honest {i}".encode()))
        assert edwards.key_defect(key.public_key) is None
        check_public_key(key.public_key, what="test")


def test_identity_key_forgery_does_not_verify_as_a_transaction() -> None:
    """The issue's finding, through the one verify the chain uses (failed before ADR 0021:
    OpenSSL accepts (R = identity, S = 0) by the identity key on any message)."""
    chain_id = sha256(b"gridchain test chain")
    forged = IDENTITY_ENCODING + bytes(32)
    for payload in (b"", b"transfer everything", bytes(100)):
        assert not verify(IDENTITY_ENCODING, forged, Domain.TX, chain_id, payload)


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (IDENTITY_ENCODING, SmallOrderKeyError),
        (bytes(32), SmallOrderKeyError),
        ((2**255 - 19).to_bytes(32, "little"), NonCanonicalKeyError),
        ((2**255 - 1).to_bytes(32, "little"), NonCanonicalKeyError),
        ((2).to_bytes(32, "little"), KeyNotOnCurveError),
        (bytes(31), BadKeyError),
    ],
)
def test_check_public_key_raises_a_typed_error(raw: bytes, error: type[BadKeyError]) -> None:
    with pytest.raises(error) as caught:
        check_public_key(raw, what="participant x")
    assert isinstance(caught.value, BadKeyError)
    assert caught.value.message.startswith("participant x: ")
