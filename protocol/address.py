"""Addresses: the first 20 bytes of SHA-256(public key), typed by people as ``gc1<hex><check>``.

The text form is ``gc1`` + 40 hex digits of the address + 8 hex digits of checksum, the first
4 bytes of SHA-256(b"gridchain-address" + address).  A mistyped digit fails the checksum with
probability 1 - 2**-32, so a typo never sends money to an address nobody holds.
"""

from __future__ import annotations

from gridchain.protocol.crypto import PUBLIC_KEY_BYTES, sha256
from gridchain.protocol.errors import AddressChecksumError, AddressError

ADDRESS_BYTES = 20
PREFIX = "gc1"
_CHECK_BYTES = 4
TEXT_LENGTH = len(PREFIX) + 2 * (ADDRESS_BYTES + _CHECK_BYTES)


def address_of(public_key: bytes) -> bytes:
    if len(public_key) != PUBLIC_KEY_BYTES:
        raise AddressError(f"a public key is {PUBLIC_KEY_BYTES} bytes, got {len(public_key)}")
    return sha256(public_key)[:ADDRESS_BYTES]


def _checksum(address: bytes) -> bytes:
    return sha256(b"gridchain-address" + address)[:_CHECK_BYTES]


def format_address(address: bytes) -> str:
    if len(address) != ADDRESS_BYTES:
        raise AddressError(f"an address is {ADDRESS_BYTES} bytes, got {len(address)}")
    return PREFIX + address.hex() + _checksum(address).hex()


def parse_address(text: str) -> bytes:
    """Parse the text form, refusing a wrong prefix, length, digit or checksum."""
    if not isinstance(text, str):
        raise AddressError("an address is a string")
    text = text.strip()
    if not text.startswith(PREFIX):
        raise AddressError(f"an address starts with {PREFIX!r}: {text!r}")
    if len(text) != TEXT_LENGTH:
        raise AddressError(f"an address has {TEXT_LENGTH} characters, got {len(text)}: {text!r}")
    body = text[len(PREFIX) :]
    if body != body.lower():
        raise AddressError(f"an address is lower-case hex: {text!r}")
    try:
        raw = bytes.fromhex(body)
    except ValueError:
        raise AddressError(f"an address is hex after {PREFIX!r}: {text!r}") from None
    address, check = raw[:ADDRESS_BYTES], raw[ADDRESS_BYTES:]
    if _checksum(address) != check:
        raise AddressChecksumError(f"address checksum does not match (a typo?): {text!r}")
    return address
