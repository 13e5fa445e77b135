"""The one strict parser of what an HTTP client sends: path and query values and JSON bodies.

Why one layer: every value that reaches a handler has passed the same checks, so a new route
cannot forget one.  Python's own parsers are lenient in ways that become 500s or wrong answers
at the edges: ``str.isdigit`` and ``int`` accept Arabic-Indic and full-width digits,
``bytes.fromhex`` skips whitespace, ``json.loads`` recurses once per nesting level (a few
thousand ``[`` raise RecursionError) and refuses integers beyond ``sys.get_int_max_str_digits``
with a ValueError.  Here nesting depth and the length of every number are measured on the raw
bytes *before* ``json.loads`` runs, integers are ASCII digits within the u64 range, hex is
exactly hex, and every refusal is a typed 400 with the usual ``{"error": {...}}`` envelope.
"""

from __future__ import annotations

import array
import asyncio
import json
import re
from itertools import accumulate
from typing import Any

from aiohttp import web

from gridchain.api.routes import MAX_BATCH_TXS
from gridchain.protocol.errors import GridchainError
from gridchain.protocol.governance import DEVICE_ID_PATTERN, MAX_DEVICE_ID_CHARS
from gridchain.protocol.tx import MARKET_BY_LABEL, Market

U64_MAX = 2**64 - 1
#: Nesting a request body may have: the API's bodies are at most two levels deep.
MAX_JSON_DEPTH = 32
MAX_METER_ID_BYTES = 64
#: Digits one JSON number may have: a u64 has at most 20.
MAX_JSON_NUMBER_DIGITS = 20

_DIGITS = re.compile(r"[0-9]{1,20}")
_HEX = re.compile(r"(?:[0-9a-fA-F]{2})*")
_HASH = re.compile(r"[0-9a-fA-F]{64}")
#: A JSON string (escapes included), matched possessively so a long one costs no backtracking.
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*+"', re.DOTALL)
_NUMBER_RUN = re.compile(rb"[0-9]{%d,}" % (MAX_JSON_NUMBER_DIGITS + 1))
#: Keeps only the four bracket bytes of a JSON text.
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
#: Maps an opening bracket to +1 and a closing one to -1 (as signed bytes).
_BRACKET_STEP = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")


class RequestError(GridchainError):
    code = "invalid_request"


class MalformedJsonError(RequestError):
    code = "malformed_json"


class BodyTimeoutError(GridchainError):
    """The client announced a body and did not send it in time."""

    code = "body_timeout"
    http_status = 408


def parse_uint(text: str, what: str, *, lo: int = 0, hi: int = U64_MAX) -> int:
    """A decimal integer of ASCII digits within ``lo..hi`` (never more than a u64)."""
    if _DIGITS.fullmatch(text) is None:
        raise RequestError(f"{what} is a non-negative integer of ASCII digits, got {text!r:.80}")
    value = int(text)
    if not lo <= value <= min(hi, U64_MAX):
        raise RequestError(f"{what} must be {lo} to {min(hi, U64_MAX)}, got {value}")
    return value


def parse_height(text: str) -> int | None:
    """A block height (0 to 2^64-1; 0 names the genesis state), or None for ``latest``."""
    if text == "latest":
        return None
    try:
        return parse_uint(text, "a block height")
    except RequestError:
        raise RequestError(
            f"a block is named by its height (0 to {U64_MAX}) or 'latest', got {text!r:.80}"
        ) from None


def parse_hash(text: str) -> bytes:
    """A 32-byte hash as exactly 64 hex digits."""
    if _HASH.fullmatch(text) is None:
        raise RequestError(f"a hash is 64 hex digits, got {text!r:.80}")
    return bytes.fromhex(text)


def parse_meter_id(text: str) -> str:
    """A meter id: 1 to 64 bytes of UTF-8 (a path may decode to text UTF-8 cannot encode)."""
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        size = 0
    if not 1 <= size <= MAX_METER_ID_BYTES:
        raise RequestError(f"a meter id is 1 to {MAX_METER_ID_BYTES} bytes of UTF-8")
    return text


def parse_device_id(text: str) -> str:
    """A device id as LinkDevice admits it (1-48 of A-Z a-z 0-9 . _ : -)."""
    if DEVICE_ID_PATTERN.fullmatch(text) is None:
        raise RequestError(
            f"a device id is 1 to {MAX_DEVICE_ID_CHARS} characters of A-Z a-z 0-9 . _ : -"
        )
    return text


def parse_market(text: str) -> Market:
    """A market by its label (day_ahead, intraday) or its number (0, 1)."""
    if text in MARKET_BY_LABEL:
        return MARKET_BY_LABEL[text]
    if text in ("0", "1"):
        return Market(int(text))
    raise RequestError(f"market is day_ahead or intraday, got {text!r:.80}")


def parse_hex(value: object, what: str) -> bytes:
    """A JSON string of hex digits (an even number, nothing else) as bytes."""
    if not isinstance(value, str):
        raise RequestError(f"{what} must be a hex string")
    if _HEX.fullmatch(value) is None:
        raise RequestError(f"{what} is not valid hex")
    return bytes.fromhex(value)


def check_json_shape(body: bytes) -> None:
    """Refuse a body nested deeper than MAX_JSON_DEPTH or with an over-long number.

    Runs on the raw bytes, before ``json.loads``: strings are blanked first (a bracket or a
    digit inside a string is data), then the depth is the running sum of the brackets.
    """
    outside = _JSON_STRING.sub(b'""', body)
    brackets = outside.translate(None, _NOT_BRACKETS).translate(_BRACKET_STEP)
    if brackets and max(accumulate(array.array("b", brackets))) > MAX_JSON_DEPTH:
        raise MalformedJsonError(f"request body nests deeper than {MAX_JSON_DEPTH} levels")
    if _NUMBER_RUN.search(outside) is not None:
        raise MalformedJsonError(
            f"a number in the request body has more than {MAX_JSON_NUMBER_DIGITS} digits"
        )


def parse_json(body: bytes) -> Any:
    """A JSON body, bounded in depth and number size before it is parsed."""
    check_json_shape(body)
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise MalformedJsonError("request body is not valid JSON") from None
    except (ValueError, RecursionError):  # the pre-check makes these unreachable; still typed
        raise MalformedJsonError("request body is not acceptable JSON") from None


#: Content types whose body is one encoded transaction rather than JSON.
RAW_TX_CONTENT_TYPES = ("application/msgpack", "application/octet-stream")


def parse_submission(body: bytes, content_type: str) -> tuple[list[bytes], bool]:
    """The raw transactions of a POST /v1/txs body and whether it was the batch form: one
    encoded transaction, ``{"tx": hex}`` or ``{"txs": [hex, ...]}`` (1 to MAX_BATCH_TXS).
    Validators and gateways accept exactly these shapes, through this one function."""
    if content_type in RAW_TX_CONTENT_TYPES:
        return [body], False
    doc = parse_json(body)
    if isinstance(doc, dict) and set(doc) == {"tx"}:
        return [parse_hex(doc["tx"], '"tx"')], False
    if isinstance(doc, dict) and set(doc) == {"txs"} and isinstance(doc["txs"], list):
        if not 1 <= len(doc["txs"]) <= MAX_BATCH_TXS:
            raise RequestError(f'"txs" holds 1 to {MAX_BATCH_TXS} transactions')
        return [parse_hex(v, f'"txs"[{i}]') for i, v in enumerate(doc["txs"])], True
    raise RequestError(
        'expected {"tx": "<hex of the encoded transaction>"} or {"txs": ["<hex>", ...]}'
    )


async def read_body(request: web.Request, timeout_s: float) -> bytes:
    """The whole body, or BodyTimeoutError if the client does not send it within the time."""
    try:
        async with asyncio.timeout(timeout_s):
            return await request.read()
    except TimeoutError:
        raise BodyTimeoutError(f"the request body did not arrive within {timeout_s:g} s") from None
