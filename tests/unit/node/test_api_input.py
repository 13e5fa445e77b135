"""The strict input layer of the API (gridchain.node.api_input, ADR 0020).

Why: Python's own parsers accept non-ASCII digits, whitespace in hex, and recurse once per
JSON nesting level; these tests pin what the one layer every handler uses lets through."""

from __future__ import annotations

import json

import pytest

from gridchain.node.api_input import (
    MAX_JSON_DEPTH,
    MAX_JSON_NUMBER_DIGITS,
    MalformedJsonError,
    RequestError,
    parse_hash,
    parse_height,
    parse_hex,
    parse_json,
    parse_market,
    parse_meter_id,
    parse_uint,
)

U64_MAX = 2**64 - 1


@pytest.mark.parametrize("text", ["0", "7", "18446744073709551615", "00000000000000000001"])
def test_ascii_integers_within_a_u64_parse(text: str) -> None:
    assert parse_uint(text, "x") == int(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "-1",
        "+1",
        " 1",
        "1 ",
        "1_000",
        "0x10",
        "1.0",
        "١",
        "１",
        "𝟏",
        "²",
        "18446744073709551616",
        "9" * 21,
        "1e3",
    ],
)
def test_anything_else_is_a_request_error(text: str) -> None:
    with pytest.raises(RequestError):
        parse_uint(text, "x")


def test_bounds_are_checked_and_never_exceed_a_u64() -> None:
    assert parse_uint("5", "x", lo=5, hi=5) == 5
    with pytest.raises(RequestError):
        parse_uint("4", "x", lo=5)
    with pytest.raises(RequestError):
        parse_uint(str(U64_MAX + 1), "x", hi=2**70)


def test_heights_and_latest() -> None:
    assert parse_height("latest") is None
    assert parse_height("0") == 0
    assert parse_height(str(U64_MAX)) == U64_MAX
    for bad in ("LATEST", "١", str(U64_MAX + 1), "-0"):
        with pytest.raises(RequestError):
            parse_height(bad)


def test_hashes_are_exactly_64_hex_digits() -> None:
    assert parse_hash("Ab" * 32) == bytes([0xAB]) * 32
    for bad in ("ab" * 31, "ab" * 33, " " + "ab" * 31 + "a", "ab" * 31 + " a", "zz" * 32, "٣" * 64):
        with pytest.raises(RequestError):
            parse_hash(bad)


def test_hex_bodies_are_hex_and_nothing_else() -> None:
    assert parse_hex("00ff", "tx") == b"\x00\xff"
    assert parse_hex("", "tx") == b""
    for bad in ("0", "0 0", " 00", "00\n", "gg", 5, None, ["00"]):
        with pytest.raises(RequestError):
            parse_hex(bad, "tx")


def test_nesting_is_bounded_before_parsing() -> None:
    at_limit = b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH
    assert parse_json(at_limit) == json.loads(at_limit)
    for body in (b"[" * (MAX_JSON_DEPTH + 1), b"[" * 1_000_000, b'{"a":' * 100 + b"1" + b"}" * 100):
        with pytest.raises(MalformedJsonError):
            parse_json(body)


def test_numbers_are_bounded_before_parsing() -> None:
    assert parse_json(b"1" + b"0" * (MAX_JSON_NUMBER_DIGITS - 1)) == 10 ** (
        MAX_JSON_NUMBER_DIGITS - 1
    )
    for body in (
        b"9" * 5000,
        b"-" + b"9" * 21,
        b"0." + b"0" * 30 + b"1",
        b'{"tx": 1' + b"0" * 40 + b"}",
    ):
        with pytest.raises(MalformedJsonError):
            parse_json(body)


def test_brackets_digits_and_escaped_quotes_inside_strings_are_data() -> None:
    text = {"tx": "[" * 100 + "9" * 100 + '\\"[[[' + "{" * 50}
    assert parse_json(json.dumps(text).encode()) == text


@pytest.mark.parametrize("body", [b"", b"{", b'{"tx": "ab}', b"\xff\xfe", b"NaN x", b"[1,]"])
def test_malformed_json_is_a_typed_error(body: bytes) -> None:
    with pytest.raises(MalformedJsonError):
        parse_json(body)


def test_meter_ids_are_1_to_64_bytes_of_utf8() -> None:
    assert parse_meter_id("pv-a") == "pv-a"
    assert parse_meter_id("é" * 32) == "é" * 32
    for bad in ("", "é" * 33, "x" * 65, "\udca0"):
        with pytest.raises(RequestError):
            parse_meter_id(bad)


def test_markets_by_label_or_number() -> None:
    assert parse_market("intraday") == parse_market("1")
    assert parse_market("day_ahead") == parse_market("0")
    for bad in ("", "2", "Intraday", "١"):
        with pytest.raises(RequestError):
            parse_market(bad)
