"""Ids as people type them: the full 64 hex digits, or the unique prefix a list showed.

The wallet's lists print the first 16 digits of an order or request id (``wallet orders``,
``wallet offers``, ``wallet cd list``); a command that takes an id accepts any prefix of at
least MIN_PREFIX digits that names exactly one of the ids it could mean (the wallet's own
orders, the book's offers, the chain's C&D requests).  An ambiguous prefix is refused with the
candidates named, so the user types more digits instead of acting on the wrong one.
"""

from __future__ import annotations

from collections.abc import Iterable

from gridchain.protocol.errors import GridchainError
from gridchain.wallet.commands import WalletArgumentError

FULL_DIGITS = 64
MIN_PREFIX = 4
#: Candidates an ambiguity error names at most.
SHOWN = 10


class AmbiguousIdError(GridchainError):
    """A prefix that names more than one id; the message names them."""

    code = "ambiguous_id"


class UnknownIdError(GridchainError):
    """A prefix that names none of the ids it could mean."""

    code = "unknown_id"


def id_text(text: str, what: str) -> str:
    """``text`` as lower-case hex of MIN_PREFIX to 64 digits (a prefix or a whole id)."""
    value = text.strip().lower()
    if not MIN_PREFIX <= len(value) <= FULL_DIGITS or any(
        c not in "0123456789abcdef" for c in value
    ):
        raise WalletArgumentError(
            f"{what} is its 64 hex digits or a unique prefix of {MIN_PREFIX} or more, got {text!r}"
        )
    return value


def is_full(value: str) -> bool:
    return len(value) == FULL_DIGITS


def resolve(prefix: str, candidates: Iterable[str], what: str, where: str) -> str:
    """The one id of ``candidates`` that starts with ``prefix`` (``where`` says whose ids
    they are, for the message)."""
    matches = sorted({c for c in candidates if c.startswith(prefix)})
    if not matches:
        raise UnknownIdError(f"no {what} starts with {prefix} among {where}")
    if len(matches) > 1:
        named = ", ".join(matches[:SHOWN]) + (" ..." if len(matches) > SHOWN else "")
        raise AmbiguousIdError(
            f"{what} prefix {prefix} matches {len(matches)} of {where}: {named}; type more digits"
        )
    return matches[0]
