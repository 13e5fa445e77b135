"""Credits <-> milli-credits: exact, or a typed refusal; never a rounded amount."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gridchain.wallet.units import MAX_MC, AmountError, format_credits, parse_credits


@pytest.mark.parametrize(
    ("text", "mc"),
    [
        ("12.5", 12_500),
        ("12", 12_000),
        ("12.500", 12_500),
        ("0.001", 1),
        ("0", 0),
        ("0.1", 100),
        (" 7 ", 7_000),
        ("1.5000", 1_500),  # trailing zeros denote the same exact amount
        ("007.25", 7_250),
        ("18446744073709551.615", MAX_MC),
    ],
)
def test_parse_credits_is_exact(text: str, mc: int) -> None:
    assert parse_credits(text) == mc


@pytest.mark.parametrize(
    "text",
    [
        "-1",
        "-0.5",
        "1.0005",
        "0.0001",
        # 28 zeros then a 1: the default Decimal context (28 digits) would round this to 1000
        "1.0000000000000000000000000001",
        "18446744073709551.616",  # one mc more than a U64 holds
        "abc",
        "",
        "   ",
        "1e3",
        "nan",
        "inf",
        "+1",
        "1,5",
        "1_000",
        ".5",
        "5.",
        "1.2.3",
        "\u0663",  # ARABIC-INDIC DIGIT THREE: Decimal accepts it, money input should not
        "9" * 65,
    ],
)
def test_parse_credits_refuses_with_typed_error(text: str) -> None:
    with pytest.raises(AmountError) as info:
        parse_credits(text)
    assert info.value.code == "bad_amount"


def test_refusal_messages_say_what_is_wrong() -> None:
    with pytest.raises(AmountError, match="negative"):
        parse_credits("-3")
    with pytest.raises(AmountError, match="at most 3 decimals"):
        parse_credits("1.0005")
    with pytest.raises(AmountError, match="too large"):
        parse_credits("99999999999999999999")


@pytest.mark.parametrize(
    ("mc", "text"),
    [(12_500, "12.500"), (0, "0.000"), (1, "0.001"), (1_000, "1.000"), (-5, "-0.005")],
)
def test_format_credits(mc: int, text: str) -> None:
    assert format_credits(mc) == text


@given(st.integers(min_value=0, max_value=MAX_MC))
def test_format_then_parse_round_trips(mc: int) -> None:
    assert parse_credits(format_credits(mc)) == mc


@given(st.integers(min_value=0, max_value=10**12), st.integers(min_value=0, max_value=999))
def test_typed_decimals_are_exact(whole: int, frac: int) -> None:
    text = f"{whole}.{frac:03d}".rstrip("0").rstrip(".")
    assert parse_credits(text) == whole * 1000 + frac


@given(
    st.integers(min_value=0, max_value=10**6),
    st.integers(min_value=0, max_value=999),
    st.integers(min_value=1, max_value=9),
    st.integers(min_value=0, max_value=5),
)
def test_a_fourth_significant_decimal_is_refused(
    whole: int, frac: int, extra: int, zeros: int
) -> None:
    with pytest.raises(AmountError):
        parse_credits(f"{whole}.{frac:03d}{'0' * zeros}{extra}")
