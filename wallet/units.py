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

from gridchain.protocol.errors import GridchainError

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


# --- prices and energy -------------------------------------------------------------------
#
# The chain counts energy in Wh and prices in mc per kWh.  People think in kWh and in credits
# per kWh, so those are the defaults; the chain's own units are accepted with a suffix, for
# scripts that already hold integers.  The same exact decimal conversion as for credits applies:
# nothing is rounded.

_PRICE_RE = re.compile(r"(?P<number>[0-9.]+)\s*(?P<unit>mc)?\s*(?:/\s*kwh)?", re.IGNORECASE)
_ENERGY_RE = re.compile(r"(?P<number>[0-9.]+)\s*(?P<unit>kwh|wh)?", re.IGNORECASE)


class UnitError(GridchainError):
    """A price or an energy quantity the wallet cannot read exactly."""

    code = "bad_unit"


def _decimal_thousandths(number: str, what: str, text: str) -> int:
    """``"1.5"`` -> 1500: a decimal with at most three places, times 1000, exactly."""
    try:
        return parse_credits(number)
    except AmountError:
        raise UnitError(
            f"{what} has at most {DECIMALS} decimals and no sign or exponent: {text!r}"
        ) from None


def parse_price(text: str) -> int:
    """A price in mc/kWh from ``"120"`` / ``"120.5/kWh"`` (credits per kWh) or ``"120500mc"``."""
    match = _PRICE_RE.fullmatch(text.strip())
    if match is None or len(text) > _MAX_TEXT:
        raise UnitError(
            f"a price is credits per kWh (120.5 or 120.5/kWh) or mc per kWh (120500mc): {text!r}"
        )
    number = match.group("number")
    if match.group("unit"):
        if not number.isdigit():
            raise UnitError(f"a price in mc/kWh is a whole number: {text!r}")
        return int(number)
    return _decimal_thousandths(number, "a price in credits/kWh", text)


def parse_energy(text: str) -> int:
    """Energy in Wh from ``"1.5"`` / ``"1.5kWh"`` (kWh, the default) or ``"1500Wh"``."""
    match = _ENERGY_RE.fullmatch(text.strip())
    if match is None or len(text) > _MAX_TEXT:
        raise UnitError(f"energy is kWh (1.5 or 1.5kWh) or Wh (1500Wh): {text!r}")
    number = match.group("number")
    unit = (match.group("unit") or "kwh").lower()
    if unit == "wh":
        if not number.isdigit():
            raise UnitError(f"energy in Wh is a whole number: {text!r}")
        return int(number)
    return _decimal_thousandths(number, "energy in kWh", text)


def format_price(mc_per_kwh: int) -> str:
    """``120500`` -> ``"120.500/kWh"`` (credits per kWh)."""
    return f"{format_credits(mc_per_kwh)}/kWh"


def format_energy(wh: int) -> str:
    """``1500`` -> ``"1.500 kWh"``."""
    whole, frac = divmod(wh, 1000)
    return f"{whole}.{frac:03d} kWh"
