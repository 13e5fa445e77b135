"""Ids by the unique prefix a list shows (wallet/ids.py), and which offer a take meets first
(wallet/offers.py): pure functions, checked without a node."""

from __future__ import annotations

import pytest

from gridchain.api.models import Offer, Offers
from gridchain.wallet.commands import WalletArgumentError
from gridchain.wallet.ids import AmbiguousIdError, UnknownIdError, id_text, resolve
from gridchain.wallet.offers import offers_ahead

A = "ab12" + "0" * 60
B = "ab13" + "1" * 60
C = "cd00" + "2" * 60


def test_a_unique_prefix_names_its_id() -> None:
    assert resolve("ab12", [A, B, C], "order id", "mine") == A
    assert resolve(C, [A, B, C], "order id", "mine") == C


def test_an_ambiguous_prefix_names_the_candidates() -> None:
    with pytest.raises(AmbiguousIdError) as caught:
        resolve("ab1", [A, B, C], "order id", "the orders of me")
    assert caught.value.code == "ambiguous_id"
    assert A in caught.value.message
    assert B in caught.value.message
    assert C not in caught.value.message


def test_an_unknown_prefix_is_refused() -> None:
    with pytest.raises(UnknownIdError):
        resolve("ffff", [A, B, C], "order id", "mine")


@pytest.mark.parametrize("text", ["ab1", "xyz0", "a" * 65, "", "ab 12"])
def test_malformed_ids_are_refused(text: str) -> None:
    with pytest.raises(WalletArgumentError):
        id_text(text, "ORDER_ID")


def test_id_text_is_lower_case_hex() -> None:
    assert id_text(" AB12 ", "ORDER_ID") == "ab12"


def _offer(oid: str, side: str, price: int, priority: int) -> Offer:
    return Offer(
        id=oid,
        side=side,
        price_mc_per_kwh=price,
        display_wh=1000,
        iceberg=False,
        seq=priority,
        priority=priority,
    )


def _book(asks: list[Offer], bids: list[Offer]) -> Offers:
    return Offers(
        market="intraday", slot=5, height=1, open=True, matching_rule="adbev", asks=asks, bids=bids
    )


def test_a_take_meets_the_crossing_offers_before_it() -> None:
    # AdBEV order: an old dear ask first, then a cheap one, then a dearer one
    old, cheap, dearer = (
        _offer(A, "sell", 130, 1),
        _offer(B, "sell", 110, 2),
        _offer(C, "sell", 150, 3),
    )
    book = _book([old, cheap, dearer], [])
    assert offers_ahead(book, old) == []  # a buy at 130 meets the old ask first
    assert offers_ahead(book, cheap) == []  # a buy at 110 does not cross the 130 ask
    assert offers_ahead(book, dearer) == [old, cheap]
    high, low = _offer(A, "buy", 90, 1), _offer(B, "buy", 80, 2)
    bids = _book([], [high, low])
    assert offers_ahead(bids, low) == [high]  # a sell at 80 meets the 90 bid first
    assert offers_ahead(bids, high) == []
