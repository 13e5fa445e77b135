"""Encrypted keystores: an Ed25519 seed sealed with a key derived from a password by scrypt.

The format is a small JSON object (version 1) whose ciphertext is AES-256-GCM over the 32-byte
seed, with the address and public key as authenticated data, so a keystore whose visible
address was edited fails to open instead of signing for someone else.  scrypt's cost (n=2**15,
r=8, p=1, about 32 MiB and tens of milliseconds) is the usual interactive setting; testnets may
lower ``n`` to start quickly, and the file records what was used.

This module turns dictionaries into keys and back; reading and writing files is the caller's.
"""

from __future__ import annotations

import os
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from gridchain.protocol.address import address_of, format_address
from gridchain.protocol.crypto import SigningKey
from gridchain.protocol.errors import GridchainError

KEYSTORE_VERSION = 1
DEFAULT_SCRYPT_N = 2**15
TESTNET_SCRYPT_N = 2**12


class KeystoreError(GridchainError):
    code = "keystore_invalid"


class WrongPasswordError(KeystoreError):
    code = "wrong_password"


def _derive(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(password.encode("utf-8"))


def _aad(address_text: str, public_key_hex: str) -> bytes:
    return f"gridchain-keystore-v1|{address_text}|{public_key_hex}".encode()


def seal(
    key: SigningKey, password: str, *, name: str = "", n: int = DEFAULT_SCRYPT_N
) -> dict[str, Any]:
    salt, nonce = os.urandom(16), os.urandom(12)
    r, p = 8, 1
    address_text = format_address(address_of(key.public_key))
    public_hex = key.public_key.hex()
    ciphertext = AESGCM(_derive(password, salt, n, r, p)).encrypt(
        nonce, key.seed, _aad(address_text, public_hex)
    )
    return {
        "version": KEYSTORE_VERSION,
        "name": name,
        "address": address_text,
        "public_key": public_hex,
        "crypto": {
            "kdf": "scrypt",
            "kdfparams": {"n": n, "r": r, "p": p, "salt": salt.hex()},
            "cipher": "aes-256-gcm",
            "nonce": nonce.hex(),
            "ciphertext": ciphertext.hex(),
        },
    }


def open_keystore(doc: Any, password: str) -> SigningKey:
    """Decrypt a keystore; a wrong password raises WrongPasswordError, a bad file KeystoreError."""
    try:
        if doc["version"] != KEYSTORE_VERSION:
            raise KeystoreError(f"keystore version {doc['version']!r} is not supported")
        crypto = doc["crypto"]
        if crypto["kdf"] != "scrypt" or crypto["cipher"] != "aes-256-gcm":
            raise KeystoreError("keystore uses an unsupported kdf or cipher")
        params = crypto["kdfparams"]
        n, r, p = int(params["n"]), int(params["r"]), int(params["p"])
        salt = bytes.fromhex(params["salt"])
        nonce = bytes.fromhex(crypto["nonce"])
        if not 8 <= len(nonce) <= 128:  # what AES-GCM takes (seal writes 12 bytes)
            raise KeystoreError(f"keystore nonce is {len(nonce)} bytes; 8 to 128 expected")
        ciphertext = bytes.fromhex(crypto["ciphertext"])
        aad = _aad(str(doc["address"]), str(doc["public_key"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise KeystoreError(f"keystore is malformed: {exc}") from None
    if not (2 <= n <= 2**20 and n & (n - 1) == 0 and 1 <= r <= 32 and 1 <= p <= 16):
        raise KeystoreError("keystore scrypt parameters are out of range")
    try:
        seed = AESGCM(_derive(password, salt, n, r, p)).decrypt(nonce, ciphertext, aad)
    except InvalidTag:
        raise WrongPasswordError("wrong password for this keystore") from None
    key = SigningKey(seed)
    if key.public_key.hex() != doc["public_key"]:
        raise KeystoreError("keystore public key does not match its secret")
    return key
