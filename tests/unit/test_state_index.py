"""The sorted key index behind ``scan`` (market/state.py): ordered, lazy, resumable scans.

Why: the order books walk their price levels one entry at a time with
``scan(prefix, after=key)`` through up to four nested overlays (mempool, transaction, order).
A scan that skipped a key, returned a deleted one or lost an overlay's write would match an
order against the wrong counterparty on one validator only.  The model here is the obvious
one: apply every write to a dict, sort, filter.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gridchain.market.state import MerkleState, Overlay

KEYS = st.binary(min_size=0, max_size=4)
VALUES = st.binary(min_size=1, max_size=4)
WRITES = st.dictionaries(KEYS, st.none() | VALUES, max_size=15)


def _model(
    entries: dict[bytes, bytes], layers: list[dict[bytes, bytes | None]]
) -> dict[bytes, bytes]:
    out = dict(entries)
    for layer in layers:
        for k, v in layer.items():
            if v is None:
                out.pop(k, None)
            else:
                out[k] = v
    return out


def _expected(
    model: dict[bytes, bytes], prefix: bytes, after: bytes | None
) -> list[tuple[bytes, bytes]]:
    return sorted(
        (k, v) for k, v in model.items() if k.startswith(prefix) and (after is None or k > after)
    )


@settings(max_examples=150, deadline=None)
@given(
    entries=st.dictionaries(KEYS, VALUES, max_size=30),
    layers=st.lists(WRITES, min_size=1, max_size=3),
    prefix=st.binary(max_size=1),
    after=st.none() | KEYS,
    scan_between=st.booleans(),
)
def test_scans_through_nested_overlays_match_the_model(
    entries: dict[bytes, bytes],
    layers: list[dict[bytes, bytes | None]],
    prefix: bytes,
    after: bytes | None,
    scan_between: bool,
) -> None:
    base = MerkleState(entries)
    view: MerkleState | Overlay = base
    views: list[Overlay] = []
    for layer in layers:
        view = Overlay(view)
        views.append(view)
        for k, v in layer.items():
            if scan_between:
                list(view.scan(prefix))  # builds the sorted index part way through
            if v is None:
                view.delete(k)
            else:
                view.put(k, v)
    model = _model(entries, layers)
    assert list(view.scan(prefix, after)) == _expected(model, prefix, after)
    # Folding the layers down, innermost first, keeps the outer view's scan the same.
    for i in range(len(views) - 1, 0, -1):
        views[i].merge_into_parent()
        assert list(views[i - 1].scan(prefix, after)) == _expected(model, prefix, after)
    assert base.root() == MerkleState(entries).root()  # the committed state is untouched


@settings(max_examples=100, deadline=None)
@given(entries=st.dictionaries(KEYS, VALUES, max_size=30), writes=WRITES, after=st.none() | KEYS)
def test_the_committed_index_follows_apply(
    entries: dict[bytes, bytes], writes: dict[bytes, bytes | None], after: bytes | None
) -> None:
    state = MerkleState(entries)
    state.apply(writes)
    model = _model(entries, [writes])
    assert list(state.scan(b"", after)) == _expected(model, b"", after)
    assert [k for k, _ in state.items()] == sorted(model)
    assert len(state) == len(model)


def test_scan_is_lazy_and_resumes_after_a_key() -> None:
    state = MerkleState({b"book:%03d" % i: b"x" for i in range(1000)})
    scan = state.scan(b"book:")
    assert next(scan) == (b"book:000", b"x")  # no full materialisation needed to start
    assert next(state.scan(b"book:", after=b"book:499")) == (b"book:500", b"x")
    assert list(state.scan(b"book:", after=b"book:999")) == []
    assert next(state.scan(b"book:", after=b"a")) == (b"book:000", b"x")  # before the prefix


def test_an_overlay_rebuilds_its_index_when_writes_change_behind_its_back() -> None:
    view = Overlay(MerkleState({b"k1": b"1"}))
    assert list(view.scan(b"k")) == [(b"k1", b"1")]
    view.writes[b"k2"] = b"2"  # not through put(): the index notices the size change
    assert list(view.scan(b"k")) == [(b"k1", b"1"), (b"k2", b"2")]


def test_a_deleted_then_rewritten_key_appears_once() -> None:
    base = MerkleState({b"a": b"1", b"b": b"2"})
    outer = Overlay(base)
    list(outer.scan(b""))
    outer.delete(b"a")
    inner = Overlay(outer)
    list(inner.scan(b""))
    inner.put(b"a", b"3")
    inner.put(b"c", b"4")
    assert list(inner.scan(b"")) == [(b"a", b"3"), (b"b", b"2"), (b"c", b"4")]
    inner.merge_into_parent()
    assert list(outer.scan(b"")) == [(b"a", b"3"), (b"b", b"2"), (b"c", b"4")]
    assert list(outer.scan(b"", after=b"a")) == [(b"b", b"2"), (b"c", b"4")]


def test_a_book_walk_passes_each_tombstone_once_and_sees_new_keys_below_it() -> None:
    """Deleting a book's best entries one by one (as trades do) and then writing a better one:
    every scan from the start must return the true best entry."""
    base = MerkleState({b"bk:%03d" % i: b"o" for i in range(0, 200, 2)})
    view = Overlay(base)
    for i in range(0, 100, 2):
        assert next(view.scan(b"bk:")) == (b"bk:%03d" % i, b"o")
        view.delete(b"bk:%03d" % i)
    assert next(view.scan(b"bk:")) == (b"bk:100", b"o")
    view.put(b"bk:051", b"new")  # below the remembered floor
    assert next(view.scan(b"bk:")) == (b"bk:051", b"new")
    assert next(view.scan(b"bk:", after=b"bk:051")) == (b"bk:100", b"o")
    inner = Overlay(view)
    inner.put(b"bk:001", b"inner")
    inner.delete(b"bk:051")
    assert next(inner.scan(b"bk:")) == (b"bk:001", b"inner")
    inner.merge_into_parent()
    assert [k for k, _ in view.scan(b"bk:")][:2] == [b"bk:001", b"bk:100"]
    for key, _ in list(view.scan(b"bk:")):
        view.delete(key)
    assert list(view.scan(b"bk:")) == []
    view.put(b"bk:500", b"last")
    assert list(view.scan(b"bk:")) == [(b"bk:500", b"last")]
