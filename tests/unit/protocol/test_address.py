"""Addresses: the text people type must never silently name a different account.

Why: money sent to a mistyped address is gone (nobody holds its key).  The checksum exists so
every single-character typo is refused, and the parser is strict (one prefix, lower-case hex,
exact length) so one account has exactly one text form to compare, log and paste.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridchain.protocol.address import (
    ADDRESS_BYTES,
    PREFIX,
    TEXT_LENGTH,
    address_of,
    format_address,
    parse_address,
)
from gridchain.protocol.crypto import SigningKey, sha256
from gridchain.protocol.errors import AddressChecksumError, AddressError

KEY = SigningKey(bytes(range(32)))
ADDRESS = address_of(KEY.public_key)
TEXT = format_address(ADDRESS)
HEX_DIGITS = "0123456789abcdef"
#: Replacement characters for the typo tests: hex digits, their upper case, near misses and
#: characters that look like digits in other scripts.
CANDIDATES = HEX_DIGITS + "ABCDEFgGlOoxX -_.:\t" + "٣０é"

addresses = st.binary(min_size=ADDRESS_BYTES, max_size=ADDRESS_BYTES)


def test_layout() -> None:
    """``gc1`` + 40 hex digits of sha256(pk)[:20] + 8 hex digits of the domain-tagged checksum."""
    assert sha256(KEY.public_key)[:20] == ADDRESS
    checksum = sha256(b"gridchain-address" + ADDRESS)[:4]
    assert "gc1" + ADDRESS.hex() + checksum.hex() == TEXT
    assert len(TEXT) == TEXT_LENGTH == 51
    assert PREFIX == "gc1"


@settings(max_examples=200, deadline=None)
@given(address=addresses)
def test_round_trip(address: bytes) -> None:
    text = format_address(address)
    assert parse_address(text) == address
    assert text == text.lower()
    assert len(text) == TEXT_LENGTH


@settings(max_examples=50, deadline=None)
@given(seed=st.binary(min_size=32, max_size=32))
def test_address_of_public_key_round_trips(seed: bytes) -> None:
    public_key = SigningKey(seed).public_key
    assert parse_address(format_address(address_of(public_key))) == sha256(public_key)[:20]


def test_every_single_character_change_is_refused() -> None:
    """Exhaustive over positions and replacement characters for one fixed address.

    In the hex part a changed digit must fail the *checksum* specifically (the text is
    otherwise well formed); anywhere else any AddressError will do.
    """
    checked = 0
    for i, original in enumerate(TEXT):
        for c in CANDIDATES:
            if c == original:
                continue
            typo = TEXT[:i] + c + TEXT[i + 1 :]
            expected: type[AddressError] = (
                AddressChecksumError if i >= len(PREFIX) and c in HEX_DIGITS else AddressError
            )
            with pytest.raises(expected):
                parse_address(typo)
            checked += 1
    assert checked > 50 * 15


@settings(max_examples=200, deadline=None)
@given(address=addresses, data=st.data())
def test_any_hex_digit_typo_fails_the_checksum(address: bytes, data: st.DataObject) -> None:
    text = format_address(address)
    i = data.draw(st.integers(len(PREFIX), TEXT_LENGTH - 1))
    c = data.draw(st.sampled_from(HEX_DIGITS).filter(lambda d: d != text[i]))
    with pytest.raises(AddressChecksumError):
        parse_address(text[:i] + c + text[i + 1 :])


def test_adjacent_transpositions_fail_the_checksum() -> None:
    """Swapping two neighbouring digits is the other common typo."""
    for i in range(len(PREFIX), TEXT_LENGTH - 1):
        if TEXT[i] == TEXT[i + 1]:
            continue
        swapped = TEXT[:i] + TEXT[i + 1] + TEXT[i] + TEXT[i + 2 :]
        with pytest.raises(AddressChecksumError):
            parse_address(swapped)


@pytest.mark.parametrize(
    "text",
    [
        "gc2" + TEXT[3:],
        "GC1" + TEXT[3:],
        "bc1" + TEXT[3:],
        "gc" + TEXT[3:] + "0",
        TEXT[3:] + "abc",
        "0x" + ADDRESS.hex(),
    ],
    ids=["gc2", "upper-prefix", "bc1", "no-1", "no-prefix", "0x-hex"],
)
def test_wrong_prefix_is_refused(text: str) -> None:
    with pytest.raises(AddressError) as info:
        parse_address(text)
    assert not isinstance(info.value, AddressChecksumError)


@pytest.mark.parametrize(
    "text",
    ["", "gc1", TEXT[:-1], TEXT + "0", TEXT[:-8], "gc1" + ADDRESS.hex(), TEXT + TEXT[3:]],
    ids=["empty", "prefix-only", "short-1", "long-1", "no-checksum", "raw-hex", "doubled"],
)
def test_wrong_length_is_refused(text: str) -> None:
    with pytest.raises(AddressError) as info:
        parse_address(text)
    assert not isinstance(info.value, AddressChecksumError)


def test_upper_case_hex_is_refused_even_with_a_valid_checksum() -> None:
    """One account, one text form: upper case would make string comparison unreliable."""
    with pytest.raises(AddressError) as info:
        parse_address(PREFIX + TEXT[3:].upper())
    assert not isinstance(info.value, AddressChecksumError)


@pytest.mark.parametrize("bad", ["g", "z", " ", "+", "٣"])
def test_non_hex_character_is_refused(bad: str) -> None:
    with pytest.raises(AddressError) as info:
        parse_address(TEXT[:20] + bad + TEXT[21:])
    assert not isinstance(info.value, AddressChecksumError)


def test_surrounding_whitespace_is_tolerated() -> None:
    """Pasted addresses often carry a newline; inner whitespace is still refused above."""
    assert parse_address(f"  {TEXT}\n") == ADDRESS


@pytest.mark.parametrize("value", [None, 42, TEXT.encode()])
def test_non_string_is_refused(value: object) -> None:
    with pytest.raises(AddressError):
        parse_address(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("length", [0, 19, 21, 32])
def test_format_refuses_wrong_length(length: int) -> None:
    with pytest.raises(AddressError):
        format_address(b"\x01" * length)


@pytest.mark.parametrize("length", [0, 20, 31, 33])
def test_address_of_refuses_wrong_key_length(length: int) -> None:
    with pytest.raises(AddressError):
        address_of(b"\x01" * length)
