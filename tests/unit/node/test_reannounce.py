"""node/reannounce.py: when a waiting transaction is flooded again."""

from __future__ import annotations

import pytest

from gridchain.node.reannounce import Reannouncer

A, B, C = b"a" * 32, b"b" * 32, b"c" * 32


def make(after_ms: int = 1000, max_backoff_ms: int = 8000, max_per_round: int = 10) -> Reannouncer:
    return Reannouncer(
        after_ms=after_ms, max_backoff_ms=max_backoff_ms, max_per_round=max_per_round
    )


def test_a_new_transaction_is_due_after_the_delay_not_at_once() -> None:
    r = make()
    assert r.due([A], 0) == []
    assert r.due([A], 999) == []
    assert r.due([A], 1000) == [A]


def test_backoff_doubles_up_to_the_cap() -> None:
    r = make(after_ms=1000, max_backoff_ms=4000)
    r.due([A], 0)
    sent_at = [t for t in range(0, 20_001, 100) if r.due([A], t)]
    # first at 1 s, then +2 s, then +4 s (the cap), then every 4 s
    assert sent_at == [1000, 3000, 7000, 11000, 15000, 19000]


def test_pool_order_is_kept_and_the_round_is_bounded() -> None:
    r = make(max_per_round=2)
    r.due([A, B, C], 0)
    assert r.due([A, B, C], 1000) == [A, B]
    assert r.due([A, B, C], 1000) == [C]  # the rest stays due for the next round


def test_a_transaction_that_left_the_pool_is_forgotten() -> None:
    r = make()
    r.due([A, B], 0)
    assert r.due([B], 1000) == [B]
    assert len(r) == 1
    # if A comes back (re-gossiped after a reorg of the pool), it waits the full delay again
    assert r.due([A, B], 1500) == []
    assert r.due([A, B], 2500) == [A]


@pytest.mark.parametrize(
    ("after_ms", "max_backoff_ms", "per_round"), [(0, 10, 1), (20, 10, 1), (10, 10, 0)]
)
def test_bad_parameters_are_refused(after_ms: int, max_backoff_ms: int, per_round: int) -> None:
    with pytest.raises(ValueError, match=r"must be at least 1|need 0 < after_ms"):
        Reannouncer(after_ms=after_ms, max_backoff_ms=max_backoff_ms, max_per_round=per_round)
