"""Keystore hardening (ADR 0021): every malformed field is a typed KeystoreError naming it, the
scrypt cost a file may ask for is bounded, and a damaged file is told apart from a wrong password.

The tests that say "failed before" raised a bare ValueError/UnicodeEncodeError (a traceback),
ran scrypt with the file's parameters, or reported damage as a wrong password, before the fix.
They assert on KeystoreError and the ``code`` string so the same test ran against the old code.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from gridchain.protocol import keystore
from gridchain.protocol.address import address_of, format_address
from gridchain.protocol.crypto import SigningKey
from gridchain.protocol.keystore import (
    DEFAULT_SCRYPT_N,
    TESTNET_SCRYPT_N,
    KeystoreError,
    WrongPasswordError,
    open_keystore,
    seal,
)

KEY = SigningKey(bytes([7]) * 32)
PASSWORD = "pw"
Doc = dict[str, Any]


@pytest.fixture(scope="module")
def sealed() -> Doc:
    return seal(KEY, PASSWORD, name="t", n=TESTNET_SCRYPT_N)


def _refusal(doc: Any, password: str = PASSWORD) -> KeystoreError:
    with pytest.raises(KeystoreError) as caught:
        open_keystore(doc, password)
    return caught.value


def _set(path: str, value: Any) -> Callable[[Doc], None]:
    def mutate(doc: Doc) -> None:
        *parents, last = path.split(".")
        target = doc
        for part in parents:
            target = target[part]
        target[last] = value

    return mutate


def _drop(path: str) -> Callable[[Doc], None]:
    def mutate(doc: Doc) -> None:
        *parents, last = path.split(".")
        target = doc
        for part in parents:
            target = target[part]
        del target[last]

    return mutate


#: case -> (mutation, code, text the message must contain)
MALFORMED: dict[str, tuple[Callable[[Doc], None], str, str]] = {
    "short nonce": (_set("crypto.nonce", "00" * 4), "keystore_field", "crypto.nonce"),
    "empty nonce": (_set("crypto.nonce", ""), "keystore_field", "crypto.nonce"),
    "long nonce": (_set("crypto.nonce", "00" * 16), "keystore_field", "crypto.nonce"),
    "nonce not hex": (_set("crypto.nonce", "zz" * 12), "keystore_field", "crypto.nonce"),
    "nonce a number": (_set("crypto.nonce", 12), "keystore_field", "crypto.nonce"),
    "short salt": (_set("crypto.kdfparams.salt", "00"), "keystore_field", "kdfparams.salt"),
    "salt a list": (_set("crypto.kdfparams.salt", []), "keystore_field", "kdfparams.salt"),
    "truncated ciphertext": (
        _set("crypto.ciphertext", "00" * 10),
        "keystore_field",
        "crypto.ciphertext",
    ),
    "n a string": (_set("crypto.kdfparams.n", "4096"), "keystore_kdf_params", "kdfparams.n"),
    "n a float": (_set("crypto.kdfparams.n", 4096.0), "keystore_kdf_params", "kdfparams.n"),
    "n not a power of two": (_set("crypto.kdfparams.n", 4095), "keystore_kdf_params", ".n"),
    "r zero": (_set("crypto.kdfparams.r", 0), "keystore_kdf_params", "kdfparams.r"),
    "p too big": (_set("crypto.kdfparams.p", 17), "keystore_kdf_params", "kdfparams.p"),
    "missing crypto": (_drop("crypto"), "keystore_field", "crypto: missing"),
    "missing nonce": (_drop("crypto.nonce"), "keystore_field", "crypto.nonce: missing"),
    "kdfparams a list": (_set("crypto.kdfparams", []), "keystore_field", "crypto.kdfparams"),
    "missing checksum": (_drop("crypto.checksum"), "keystore_field", "crypto.checksum"),
    "address a number": (_set("address", 5), "keystore_field", "address"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_every_malformed_field_is_a_typed_error_naming_it(sealed: Doc, case: str) -> None:
    """Failed before for the short nonce (ValueError from AESGCM: a traceback)."""
    mutate, code, text = MALFORMED[case]
    doc = copy.deepcopy(sealed)
    mutate(doc)
    error = _refusal(doc)
    assert error.code == code
    assert text in error.message


@pytest.mark.parametrize("doc", [None, [], "keystore", 3])
def test_a_document_that_is_no_object_is_refused(doc: Any) -> None:
    assert _refusal(doc).code == "keystore_field"


def test_a_password_that_is_not_utf8_is_a_typed_error(sealed: Doc) -> None:
    """Failed before: UnicodeEncodeError.  os.environ turns non-UTF-8 bytes into surrogates."""
    error = _refusal(sealed, "caf\udce9")
    assert error.code == "password_not_utf8"


@pytest.mark.parametrize(
    ("n", "r", "p"),
    [
        (2**20, 8, 1),  # 1 GiB: the old bounds allowed up to 2**20 * 32 (4 GiB)
        (2**18, 16, 1),  # 512 MiB
        (2**15, 8, 16),  # 32 MiB, but 16 passes: twice the work bound
    ],
)
def test_scrypt_parameters_beyond_the_bounds_are_refused_before_scrypt_runs(
    sealed: Doc, n: int, r: int, p: int
) -> None:
    """Failed before: the old bounds (n <= 2**20, r <= 32, p <= 16) let a file ask for 4 GiB
    and a minute of CPU; these were run (and then reported as a wrong password)."""
    doc = copy.deepcopy(sealed)
    doc["crypto"]["kdfparams"].update({"n": n, "r": r, "p": p})
    error = _refusal(doc)
    assert error.code == "keystore_kdf_params"


@pytest.mark.parametrize(
    ("n", "r", "p"),
    [(TESTNET_SCRYPT_N, 8, 1), (DEFAULT_SCRYPT_N, 8, 1), (2**18, 8, 1), (2**14, 8, 16)],
)
def test_the_usual_parameters_are_within_the_bounds(n: int, r: int, p: int) -> None:
    keystore.check_scrypt_params(n, r, p)  # testnet, default, geth's "standard", n*r*p at the bound


def test_seal_refuses_a_cost_beyond_the_bounds() -> None:
    with pytest.raises(KeystoreError):
        seal(KEY, PASSWORD, n=2**20)


def test_a_damaged_ciphertext_is_not_a_wrong_password(sealed: Doc) -> None:
    """Failed before: WrongPasswordError ("wrong password for this keystore")."""
    doc = copy.deepcopy(sealed)
    text = doc["crypto"]["ciphertext"]
    doc["crypto"]["ciphertext"] = ("0" if text[0] != "0" else "1") + text[1:]
    error = _refusal(doc)
    assert not isinstance(error, WrongPasswordError)
    assert error.code == "keystore_corrupted"
    # ... with the wrong password too: the checksum is checked before the password.
    assert _refusal(doc, "wrong").code == "keystore_corrupted"


def test_a_damaged_nonce_or_checksum_is_damage(sealed: Doc) -> None:
    for field in ("nonce", "checksum"):
        doc = copy.deepcopy(sealed)
        text = doc["crypto"][field]
        doc["crypto"][field] = ("0" if text[-1] != "0" else "1").join([text[:-1], ""])
        assert _refusal(doc).code == "keystore_corrupted", field


def test_an_edited_address_with_the_right_password_is_damage(sealed: Doc) -> None:
    other = SigningKey(bytes([8]) * 32)
    doc = copy.deepcopy(sealed)
    doc["public_key"] = other.public_key.hex()
    doc["address"] = format_address(address_of(other.public_key))
    assert _refusal(doc).code == "keystore_corrupted"
    assert isinstance(_refusal(doc, "wrong"), WrongPasswordError)


def test_a_wrong_password_is_still_a_wrong_password(sealed: Doc) -> None:
    error = _refusal(sealed, "wrong")
    assert isinstance(error, WrongPasswordError)
    assert error.message == "wrong password for this keystore"
    assert open_keystore(sealed, PASSWORD).seed == KEY.seed


def _version_1(key: SigningKey, password: str) -> Doc:
    """A keystore exactly as version 1's seal wrote it (genesis init before ADR 0021),
    built here with cryptography directly rather than with the module under test."""
    salt, nonce = os.urandom(16), os.urandom(12)
    address_text = format_address(address_of(key.public_key))
    aad = f"gridchain-keystore-v1|{address_text}|{key.public_key.hex()}".encode()
    aes_key = Scrypt(salt=salt, length=32, n=TESTNET_SCRYPT_N, r=8, p=1).derive(password.encode())
    return {
        "version": 1,
        "name": "old",
        "address": address_text,
        "public_key": key.public_key.hex(),
        "crypto": {
            "kdf": "scrypt",
            "kdfparams": {"n": TESTNET_SCRYPT_N, "r": 8, "p": 1, "salt": salt.hex()},
            "cipher": "aes-256-gcm",
            "nonce": nonce.hex(),
            "ciphertext": AESGCM(aes_key).encrypt(nonce, key.seed, aad).hex(),
        },
    }


def test_a_version_1_keystore_still_opens() -> None:
    doc = _version_1(KEY, PASSWORD)
    assert open_keystore(doc, PASSWORD).seed == KEY.seed
    assert isinstance(_refusal(doc, "wrong"), WrongPasswordError)
    assert _refusal({**doc, "version": 3}).code == "keystore_invalid"


def test_a_new_keystore_is_version_2_with_its_checks(sealed: Doc) -> None:
    assert sealed["version"] == 2
    assert len(bytes.fromhex(sealed["crypto"]["checksum"])) == 32
    assert len(bytes.fromhex(sealed["crypto"]["password_check"])) == 32
