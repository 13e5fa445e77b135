"""Encrypted keystores: an Ed25519 seed sealed with a key derived from a password by scrypt.

The format is a small JSON object whose ciphertext is AES-256-GCM over the 32-byte seed, with
the address and public key as authenticated data, so a keystore whose visible address was
edited fails to open instead of signing for someone else.  scrypt's cost (n=2**15, r=8, p=1,
about 32 MiB and tens of milliseconds) is the usual interactive setting; testnets may lower
``n`` to start quickly, and the file records what was used.

Version 2 (ADR 0021) adds two fields so that a damaged file is not reported as a wrong
password: ``crypto.checksum``, SHA-256 over nonce and ciphertext (no key: it is checked before
the costly KDF), and ``crypto.password_check``, a hash of scrypt output bytes 32-63 (the AES
key is bytes 0-31, exactly version 1's key, since scrypt's output is a PBKDF2 stream).  A
password that reproduces the check but not the GCM tag means the authenticated fields were
changed.  Version 1 files (``genesis init`` before ADR 0021) still open; their only signal is
the GCM tag, so for them a wrong password and a damaged file remain one error.

Every field is checked before use and refused with a typed error naming it, and the scrypt
parameters are bounded (:data:`MAX_SCRYPT_MEMORY_BYTES`, :data:`MAX_SCRYPT_WORK`) so a file
cannot make the wallet allocate gigabytes or spin for minutes.

This module turns dictionaries into keys and back; reading and writing files is the caller's.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import Any, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from gridchain.protocol.address import address_of, format_address
from gridchain.protocol.crypto import SEED_BYTES, SigningKey
from gridchain.protocol.errors import GridchainError

KEYSTORE_VERSION: Final = 2
#: Versions open_keystore reads: 1 (no checksum, no password check) and the current one.
READABLE_VERSIONS: Final = (1, 2)
DEFAULT_SCRYPT_N: Final = 2**15
TESTNET_SCRYPT_N: Final = 2**12
SCRYPT_R: Final = 8
SCRYPT_P: Final = 1
#: scrypt needs 128 * r * n bytes: 256 MiB admits geth's "standard" 2**18 at r = 8 and is 8x
#: this format's default; the old bound (n <= 2**20, r <= 32) allowed 4 GiB.
MAX_SCRYPT_MEMORY_BYTES: Final = 256 * 1024 * 1024
#: n * r * p, the number of 128-byte block mixes: one pass over the memory bound (about a
#: second on a laptop); the old bounds allowed 16 passes over 4 GiB.
MAX_SCRYPT_WORK: Final = MAX_SCRYPT_MEMORY_BYTES // 128
MAX_SCRYPT_R: Final = 32
MAX_SCRYPT_P: Final = 16
SALT_BYTES: Final = 16
MIN_SALT_BYTES: Final = 16
MAX_SALT_BYTES: Final = 64
NONCE_BYTES: Final = 12
TAG_BYTES: Final = 16
CIPHERTEXT_BYTES: Final = SEED_BYTES + TAG_BYTES
_CHECK_DOMAIN: Final = b"gridchain-keystore-v2/password-check\x00"


class KeystoreError(GridchainError):
    code = "keystore_invalid"


class WrongPasswordError(KeystoreError):
    code = "wrong_password"


class KeystoreFieldError(KeystoreError):
    """A field that is missing, of the wrong type or of the wrong size; the message names it."""

    code = "keystore_field"


class KdfParamsError(KeystoreFieldError):
    """scrypt parameters outside the bounds this module accepts (memory, work, shape)."""

    code = "keystore_kdf_params"


class KeystoreCorruptedError(KeystoreError):
    """The file was damaged or edited: its checksum or its authenticated fields do not match."""

    code = "keystore_corrupted"


class PasswordEncodingError(KeystoreError):
    """A password that is not valid Unicode text (e.g. non-UTF-8 bytes from the environment)."""

    code = "password_not_utf8"


def check_scrypt_params(n: int, r: int, p: int) -> None:
    """Raise KdfParamsError unless (n, r, p) is within this module's bounds."""
    if not (n >= 2 and n & (n - 1) == 0):
        raise KdfParamsError(f"crypto.kdfparams.n must be a power of two >= 2, got {n}")
    if not 1 <= r <= MAX_SCRYPT_R:
        raise KdfParamsError(f"crypto.kdfparams.r must be 1 to {MAX_SCRYPT_R}, got {r}")
    if not 1 <= p <= MAX_SCRYPT_P:
        raise KdfParamsError(f"crypto.kdfparams.p must be 1 to {MAX_SCRYPT_P}, got {p}")
    memory = 128 * n * r
    if memory > MAX_SCRYPT_MEMORY_BYTES:
        raise KdfParamsError(
            f"crypto.kdfparams: n={n}, r={r} needs {memory // 2**20} MiB, more than the "
            f"{MAX_SCRYPT_MEMORY_BYTES // 2**20} MiB a keystore may ask for"
        )
    if n * r * p > MAX_SCRYPT_WORK:
        raise KdfParamsError(
            f"crypto.kdfparams: n*r*p = {n * r * p} exceeds the work bound {MAX_SCRYPT_WORK}"
        )


def _password_bytes(password: str) -> bytes:
    try:
        return password.encode("utf-8")
    except UnicodeEncodeError:
        raise PasswordEncodingError(
            "the password is not valid UTF-8 text (check $GRIDCHAIN_PASSWORD's encoding)"
        ) from None


def _derive(password: str, salt: bytes, n: int, r: int, p: int) -> tuple[bytes, bytes]:
    """(AES key, password check): scrypt's output bytes 0-31, and a hash of bytes 32-63."""
    out = Scrypt(salt=salt, length=64, n=n, r=r, p=p).derive(_password_bytes(password))
    return out[:32], hashlib.sha256(_CHECK_DOMAIN + out[32:]).digest()


def _checksum(nonce: bytes, ciphertext: bytes) -> bytes:
    return hashlib.sha256(nonce + ciphertext).digest()


def _aad(address_text: str, public_key_hex: str) -> bytes:
    return f"gridchain-keystore-v1|{address_text}|{public_key_hex}".encode()


def seal(
    key: SigningKey, password: str, *, name: str = "", n: int = DEFAULT_SCRYPT_N
) -> dict[str, Any]:
    check_scrypt_params(n, SCRYPT_R, SCRYPT_P)
    salt, nonce = os.urandom(SALT_BYTES), os.urandom(NONCE_BYTES)
    address_text = format_address(address_of(key.public_key))
    public_hex = key.public_key.hex()
    aes_key, password_check = _derive(password, salt, n, SCRYPT_R, SCRYPT_P)
    ciphertext = AESGCM(aes_key).encrypt(nonce, key.seed, _aad(address_text, public_hex))
    return {
        "version": KEYSTORE_VERSION,
        "name": name,
        "address": address_text,
        "public_key": public_hex,
        "crypto": {
            "kdf": "scrypt",
            "kdfparams": {"n": n, "r": SCRYPT_R, "p": SCRYPT_P, "salt": salt.hex()},
            "cipher": "aes-256-gcm",
            "nonce": nonce.hex(),
            "ciphertext": ciphertext.hex(),
            "checksum": _checksum(nonce, ciphertext).hex(),
            "password_check": password_check.hex(),
        },
    }


def _field(container: Any, key: str, path: str) -> Any:
    if not isinstance(container, dict):
        raise KeystoreFieldError(f"{path.rpartition('.')[0] or 'keystore'}: not a JSON object")
    if key not in container:
        raise KeystoreFieldError(f"{path}: missing")
    return container[key]


def _int_field(container: Any, key: str, path: str) -> int:
    value = _field(container, key, path)
    if type(value) is not int:
        raise KdfParamsError(f"{path}: must be an integer, got {type(value).__name__}")
    return value


def _str_field(container: Any, key: str, path: str) -> str:
    value = _field(container, key, path)
    if not isinstance(value, str):
        raise KeystoreFieldError(f"{path}: must be a string, got {type(value).__name__}")
    return value


def _hex_field(container: Any, key: str, path: str, low: int, high: int) -> bytes:
    text = _str_field(container, key, path)
    if len(text) > 2 * high:
        raise KeystoreFieldError(f"{path}: longer than {high} bytes")
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise KeystoreFieldError(f"{path}: not hex") from None
    if not low <= len(raw) <= high:
        size = f"{low}" if low == high else f"{low} to {high}"
        raise KeystoreFieldError(f"{path}: must be {size} bytes, got {len(raw)}")
    return raw


def open_keystore(doc: Any, password: str) -> SigningKey:
    """Decrypt a keystore.

    A wrong password raises WrongPasswordError; a damaged or edited file
    KeystoreCorruptedError (version 2); a malformed field KeystoreFieldError or KdfParamsError
    naming it; a password that is not UTF-8 PasswordEncodingError.  Every one is a
    KeystoreError, and all but the password checks are decided before scrypt runs.
    """
    version = _field(doc, "version", "version")
    if type(version) is not int or version not in READABLE_VERSIONS:
        raise KeystoreError(f"keystore version {version!r} is not supported")
    crypto = _field(doc, "crypto", "crypto")
    if _str_field(crypto, "kdf", "crypto.kdf") != "scrypt" or (
        _str_field(crypto, "cipher", "crypto.cipher") != "aes-256-gcm"
    ):
        raise KeystoreError("keystore uses an unsupported kdf or cipher")
    params = _field(crypto, "kdfparams", "crypto.kdfparams")
    n = _int_field(params, "n", "crypto.kdfparams.n")
    r = _int_field(params, "r", "crypto.kdfparams.r")
    p = _int_field(params, "p", "crypto.kdfparams.p")
    check_scrypt_params(n, r, p)
    salt = _hex_field(params, "salt", "crypto.kdfparams.salt", MIN_SALT_BYTES, MAX_SALT_BYTES)
    nonce = _hex_field(crypto, "nonce", "crypto.nonce", NONCE_BYTES, NONCE_BYTES)
    ciphertext = _hex_field(
        crypto, "ciphertext", "crypto.ciphertext", CIPHERTEXT_BYTES, CIPHERTEXT_BYTES
    )
    public_hex = _str_field(doc, "public_key", "public_key")
    aad = _aad(_str_field(doc, "address", "address"), public_hex)
    checks: tuple[bytes, bytes] | None = None
    if version >= 2:
        checksum = _hex_field(crypto, "checksum", "crypto.checksum", 32, 32)
        password_check = _hex_field(crypto, "password_check", "crypto.password_check", 32, 32)
        if not hmac.compare_digest(checksum, _checksum(nonce, ciphertext)):
            raise KeystoreCorruptedError(
                "keystore is damaged: crypto.nonce or crypto.ciphertext does not match "
                "crypto.checksum (restore it from a backup)"
            )
        checks = (checksum, password_check)
    aes_key, derived_check = _derive(password, salt, n, r, p)
    try:
        seed = AESGCM(aes_key).decrypt(nonce, ciphertext, aad)
    except InvalidTag:
        if checks is None or not hmac.compare_digest(derived_check, checks[1]):
            raise WrongPasswordError("wrong password for this keystore") from None
        raise KeystoreCorruptedError(
            "keystore was edited: the password is right but address or public_key no longer "
            "match the sealed key"
        ) from None
    key = SigningKey(seed)
    if key.public_key.hex() != public_hex:
        raise KeystoreCorruptedError("keystore public key does not match its secret")
    return key
