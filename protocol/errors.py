"""One exception hierarchy for everything gridchain refuses.

Every error a user or a peer can cause is a subclass of :class:`GridchainError` with a stable,
machine-readable ``code``.  The HTTP API turns it into ``{"error": {"code", "message"}}`` with
the class's ``http_status``, the wallet prints its message, and tests assert on the type, so the
type *is* the contract: callers never parse messages.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar


class InvariantViolation(Exception):  # noqa: N818 - it is a violation, not a refusal
    """This node was about to break a safety rule, or already disagrees with its peers.

    Deliberately *not* a :class:`GridchainError`: a refusal is bad input that changes nothing
    and is answered with a 4xx, while a violation (signing two blocks for one step, a state
    root this node cannot reproduce, an engine contradicting itself) means the node itself can
    no longer be trusted.  Wherever one arises (a timer, a peer message, an API call) the node
    halts the same way and logs ``evidence``; nobody catches it to carry on.
    """

    code: ClassVar[str] = "invariant_violation"

    def __init__(self, message: str, *, evidence: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        #: What a person needs to investigate, as printable fields (hashes in hex).
        self.evidence: dict[str, str] = dict(evidence or {})


class GridchainError(Exception):
    """Base of every refusal gridchain reports to a caller."""

    code: ClassVar[str] = "error"
    http_status: ClassVar[int] = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# --- decoding -----------------------------------------------------------------------------


class DecodeError(GridchainError):
    """Bytes that are not a canonical encoding of the expected type."""

    code = "decode_error"


class OversizeError(DecodeError):
    code = "oversize"
    http_status = 413


class MalformedError(DecodeError):
    code = "malformed"


class UnknownTypeError(DecodeError):
    code = "unknown_type"


class UnsupportedVersionError(DecodeError):
    code = "unsupported_version"


class FieldCountError(DecodeError):
    code = "field_count"


class FieldTypeError(DecodeError):
    code = "field_type"


class FieldValueError(DecodeError):
    code = "field_value"


class NonCanonicalError(DecodeError):
    code = "non_canonical"


# --- keys, signatures, addresses -----------------------------------------------------------


class SignatureError(GridchainError):
    code = "bad_signature"


class BadKeyError(GridchainError):
    code = "bad_key"


class NonCanonicalKeyError(BadKeyError):
    """A public key whose 32 bytes are not the canonical encoding of its point (y >= p, or a
    sign bit on x = 0): another string names the same point, and libraries disagree on it."""

    code = "non_canonical_key"


class KeyNotOnCurveError(BadKeyError):
    """32 bytes that encode no point of edwards25519: no signature can ever verify."""

    code = "key_not_on_curve"


class SmallOrderKeyError(BadKeyError):
    """A public key of small order (dividing 8): it has no secret, and some verifiers
    (OpenSSL's among them) accept a forged signature by it on any message."""

    code = "small_order_key"


class AddressError(GridchainError):
    code = "bad_address"


class AddressChecksumError(AddressError):
    code = "bad_address_checksum"


# --- structural validation of transactions and blocks --------------------------------------


class ValidationError(GridchainError):
    """A well-formed object that breaks a rule checkable without ledger state."""

    code = "invalid"
