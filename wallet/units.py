"""Credits as people type them <-> milli-credits (mc) as the chain counts them.

The ledger only knows integers (DESIGN.md section 2): 1 credit = 1000 mc.  A person types
``12.5``; the wallet must turn that into exactly 12500 mc or refuse.  Going through ``float``
would turn ``0.1 + 0.2`` style inputs into off-by-one milli-credits, so the text is checked
against a strict decimal shape and converted with :class:`decimal.Decimal`, which is exact.

A value that is not a whole number of mc (``1.0005``) is refused rather than rounded: a wallet
that silently rounds money is one nobody can trust.  Trailing zeros beyond the third decimal
(``1.5000``) are accepted because they denote the same exact amount.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation, localcontext

from protocol.errors import GridchainError

MC_PER_CREDIT = 1000
DECIMALS = 3
#: Amounts travel in a U64 field of the transaction.
MAX_MC = 2**64 - 1

# ASCII digits only: ``\d`` would accept Arabic-Indic and other Unicode digits, and Decimal
# would happily convert them, which is a surprising way to type money.
_AMOUNT_RE = re.compile(r"[0-9]+(?:\.[0-9]+)?")
#: Longer than any meaningful amount (MAX_MC has 20 digits); bounds the work on junk input.
_MAX_TEXT = 64


class AmountError(GridchainError):
    """Text that is not a non-negative amount of credits with at most three decimals."""

    code = "bad_amount"


def parse_credits(text: str) -> int:
    """``"12.5"`` -> ``12500`` (mc), exactly, or raise :class:`AmountError`.

    Accepted: ASCII digits with an optional decimal point followed by digits (``12``,
    ``12.5``, ``0.001``).  Refused: signs, exponents, ``nan``/``inf``, separators, more than
    three significant decimals, and amounts that do not fit the transaction's U64 field.
    """
    stripped = text.strip()
    if stripped.startswith("-"):
        raise AmountError(f"an amount cannot be negative: {text!r}")
    if len(stripped) > _MAX_TEXT:
        raise AmountError(f"an amount has at most {_MAX_TEXT} characters, got {len(stripped)}")
    if not _AMOUNT_RE.fullmatch(stripped):
        raise AmountError(
            f"an amount is a number of credits like 12 or 12.5 (at most {DECIMALS} decimals): "
            f"{text!r}"
        )
    # The default context keeps 28 digits and would round "1.000...0001" (30 digits) * 1000 to
    # a whole number; a precision wider than the input makes the multiplication exact.
    with localcontext() as ctx:
        ctx.prec = len(stripped) + DECIMALS + 1
        try:
            value = Decimal(stripped) * MC_PER_CREDIT
        except InvalidOperation:  # pragma: no cover - the regex admits only valid decimals
            raise AmountError(f"not a number: {text!r}") from None
    if value != value.to_integral_value():
        raise AmountError(
            f"credits have at most {DECIMALS} decimals (1 mc = 0.001 credit): {text!r}"
        )
    mc = int(value)
    if mc > MAX_MC:
        raise AmountError(f"amount too large: {text!r} (at most {format_credits(MAX_MC)})")
    return mc


def format_credits(mc: int) -> str:
    """``12500`` -> ``"12.500"``: always three decimals so columns of amounts line up."""
    sign = "-" if mc < 0 else ""
    whole, frac = divmod(abs(mc), MC_PER_CREDIT)
    return f"{sign}{whole}.{frac:0{DECIMALS}d}"
