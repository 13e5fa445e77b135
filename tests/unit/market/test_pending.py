"""PendingChain: the states of executed, not yet final blocks (market/pending.py)."""

from __future__ import annotations

import pytest

from gridchain.market.pending import PendingChain

HEAD = b"\x00" * 32


def h(label: str) -> bytes:
    return label.encode().ljust(32, b".")


def tree() -> PendingChain:
    """head <- a <- b <- c, and a fork head <- x <- y."""
    chain = PendingChain(HEAD, 10)
    chain.add(h("a"), HEAD, 11, {b"k1": b"a", b"k2": b"a"}, tx_hashes=frozenset({b"t1"}))
    chain.add(h("b"), h("a"), 12, {b"k2": None, b"k3": b"b"}, tx_hashes=frozenset({b"t2"}))
    chain.add(h("c"), h("b"), 13, {b"k1": b"c"})
    chain.add(h("x"), HEAD, 11, {b"k1": b"x"}, tx_hashes=frozenset({b"t9"}))
    chain.add(h("y"), h("x"), 12, {b"k4": b"y"})
    return chain


def test_the_state_after_a_pending_block_stacks_its_ancestors_oldest_first() -> None:
    chain = tree()
    assert chain.writes_after(HEAD) == {}
    assert chain.writes_after(h("b")) == {b"k1": b"a", b"k2": None, b"k3": b"b"}
    assert chain.writes_after(h("c")) == {b"k1": b"c", b"k2": None, b"k3": b"b"}
    assert chain.writes_after(h("y")) == {b"k1": b"x", b"k4": b"y"}
    assert chain.writes_after(h("unknown")) is None


def test_a_block_needs_a_known_parent() -> None:
    chain = tree()
    assert chain.knows_parent(HEAD)
    assert chain.knows_parent(h("c"))
    with pytest.raises(KeyError):
        chain.add(h("z"), h("nowhere"), 12, {})


def test_included_transactions_follow_the_branch() -> None:
    chain = tree()
    assert chain.included_txs(h("c")) == {b"t1", b"t2"}
    assert chain.included_txs(h("y")) == {b"t9"}
    assert chain.included_txs(HEAD) == set()


def test_a_commit_keeps_only_the_descendants_of_the_new_head() -> None:
    chain = tree()
    chain.committed(h("a"), 11)
    assert h("a") not in chain  # now committed state
    assert h("x") not in chain  # a losing branch
    assert h("y") not in chain
    assert h("b") in chain
    assert h("c") in chain
    assert len(chain) == 2
    # The state after c is now stacked on the new head: a's writes are committed state.
    assert chain.writes_after(h("c")) == {b"k1": b"c", b"k2": None, b"k3": b"b"}
    assert chain.writes_after(h("a")) == {}
