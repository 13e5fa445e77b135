"""HPKE (RFC 9180) as gridchain uses it: the library's and the derived sealing interoperate,
and a wrong key, a wrong context or a bad public key is refused."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from gridchain.protocol.hpke import (
    SUITE,
    BadX25519KeyError,
    OpenError,
    check_x25519_public_key,
    open_sealed,
    public_bytes,
    seal,
    seal_derived,
)
from tests.helpers import det_encryption_key

ALICE = det_encryption_key("hpke/alice")
BOB = det_encryption_key("hpke/bob")
SEED = bytes(range(32))

#: RFC 7748 / libsodium's blocklist of small-order u-coordinates (and their non-canonical forms).
LOW_ORDER = [
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0100000000000000000000000000000000000000000000000000000000000000",
    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
    "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
]


def test_derived_sealing_opens_with_the_library() -> None:
    ct = seal_derived(b"content key", ALICE.public_key(), b"ctx", SEED)
    assert SUITE.decrypt(ct, ALICE, info=b"ctx") == b"content key"
    assert open_sealed(ct, ALICE, b"ctx") == b"content key"


def test_library_sealing_opens_with_open_sealed() -> None:
    ct = seal(b"reply", BOB.public_key(), b"ctx")
    assert open_sealed(ct, BOB, b"ctx") == b"reply"


def test_derived_sealing_is_deterministic_and_the_library_is_not() -> None:
    one = seal_derived(b"k", ALICE.public_key(), b"ctx", SEED)
    assert one == seal_derived(b"k", ALICE.public_key(), b"ctx", SEED)
    assert one != seal_derived(b"k", ALICE.public_key(), b"ctx", bytes(31) + b"\x01")
    assert seal(b"k", ALICE.public_key(), b"ctx") != seal(b"k", ALICE.public_key(), b"ctx")


def test_the_wrong_private_key_cannot_open() -> None:
    ct = seal_derived(b"secret", ALICE.public_key(), b"ctx", SEED)
    with pytest.raises(OpenError):
        open_sealed(ct, BOB, b"ctx")


def test_another_context_cannot_open() -> None:
    ct = seal_derived(b"secret", ALICE.public_key(), b"ctx", SEED)
    with pytest.raises(OpenError):
        open_sealed(ct, ALICE, b"other ctx")


@pytest.mark.parametrize("flip", [0, 31, 32, 40, -1])
def test_an_altered_ciphertext_cannot_open(flip: int) -> None:
    ct = bytearray(seal_derived(b"secret", ALICE.public_key(), b"ctx", SEED))
    ct[flip] ^= 0x01
    with pytest.raises(OpenError):
        open_sealed(bytes(ct), ALICE, b"ctx")


def test_a_truncated_ciphertext_cannot_open() -> None:
    with pytest.raises(OpenError):
        open_sealed(b"\x01" * 47, ALICE, b"ctx")


@pytest.mark.parametrize("hex_key", LOW_ORDER)
def test_low_order_and_non_canonical_keys_are_refused(hex_key: str) -> None:
    with pytest.raises(BadX25519KeyError):
        check_x25519_public_key(bytes.fromhex(hex_key))


def test_a_key_with_the_top_bit_set_is_refused() -> None:
    raw = bytearray(public_bytes(ALICE))
    raw[31] |= 0x80
    with pytest.raises(BadX25519KeyError):
        check_x25519_public_key(bytes(raw))


def test_a_real_key_is_accepted() -> None:
    for _ in range(20):
        key = X25519PrivateKey.generate()
        assert check_x25519_public_key(public_bytes(key)).public_bytes_raw() == public_bytes(key)
