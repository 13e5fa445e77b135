"""Reading a JSON document a person wrote or a tool saved: one object, strict about what
Python's json module lets through silently.

* **Duplicate keys are refused, naming the key** (``object_pairs_hook``).  json.loads keeps the
  last value, so ``{"amount_mc": 1, "amount_mc": 1000000}`` would be read as whatever the last
  line says while a reviewer reads the first.
* **A UTF-8 byte order mark is accepted** (and dropped).  RFC 8259 section 8.1 lets a parser
  ignore it; Windows editors write it; and nothing downstream depends on the raw bytes (the
  chain id is taken over the canonical form of the genesis document, not over the file).
  Refusing it would only turn a file that looks right in every editor into an error.
* Text that is not UTF-8, NaN and Infinity (not JSON), nesting deep enough to exhaust the
  parser's recursion, and a top level that is not an object are refused with a typed error.
"""

from __future__ import annotations

import json
from typing import Any, Final

from gridchain.protocol.errors import DecodeError

UTF8_BOM: Final = b"\xef\xbb\xbf"


class JsonDocumentError(DecodeError):
    """A document that is not one JSON object in UTF-8; the message says what is wrong."""

    code = "bad_json"


class DuplicateKeyError(JsonDocumentError):
    code = "duplicate_key"


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for key, value in pairs:
        if key in doc:
            raise DuplicateKeyError(f"key {key!r} appears twice in one object")
        doc[key] = value
    return doc


def _no_constant(name: str) -> Any:
    raise JsonDocumentError(f"{name} is not a JSON value")


def document_text(data: bytes | str) -> str:
    """The document as text without a byte order mark; bytes must be UTF-8."""
    if isinstance(data, bytes):
        try:
            text = data.removeprefix(UTF8_BOM).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JsonDocumentError(f"not UTF-8 text (byte {exc.start})") from None
    else:
        text = data
    return text.removeprefix("\ufeff")


def load_object(data: bytes | str) -> dict[str, Any]:
    """Parse one JSON object, refusing duplicate keys, NaN/Infinity and other non-JSON."""
    text = document_text(data)
    try:
        doc = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise JsonDocumentError(
            f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise JsonDocumentError("not JSON this parser accepts: nested too deeply") from None
    if not isinstance(doc, dict):
        raise JsonDocumentError(f"not a JSON object (the top level is {type(doc).__name__})")
    return doc
