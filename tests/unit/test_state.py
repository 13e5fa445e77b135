"""The state commitment (MerkleState) and the copy-on-write views (Overlay) execution runs on.

Why: the state root in every block header is what makes validators agree.  It must be a pure
function of the key-value contents (never of insertion order or of which writes were cached),
it must change with every real write (or a divergence could go unnoticed), the root a proposer
predicts with ``root_with`` must be exactly the root the store ends up with after ``apply``, and
an inclusion proof must convince a light client of a value and of nothing else.
"""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridchain.market import state_tree
from gridchain.market.state import MerkleState, Overlay, StateProof
from gridchain.protocol.crypto import sha256

KEYS = st.binary(min_size=0, max_size=6)
VALUES = st.binary(min_size=0, max_size=8)
ENTRIES = st.dictionaries(KEYS, VALUES, max_size=40)
WRITES = st.dictionaries(KEYS, st.none() | VALUES, max_size=20)


def _applied(entries: dict[bytes, bytes], writes: dict[bytes, bytes | None]) -> dict[bytes, bytes]:
    out = dict(entries)
    for k, v in writes.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = v
    return out


def _big_state(n: int = 700) -> MerkleState:
    """Enough keys that the tree is ~10 levels deep."""
    return MerkleState({f"key-{i}".encode(): sha256(b"%d" % i)[: i % 9] for i in range(n)})


# --- roots -----------------------------------------------------------------------------------


def test_root_with_and_apply_of_equal_writes_update_the_tree_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A proposal's root and its commit share one tree update, found by the writes' contents
    (the driver passes the execution's own dict, the bench a copy; ADR 0055)."""
    calls: list[int] = []
    real = state_tree.update

    def counted(nodes: state_tree.NodeStore, items: list[state_tree.Item]) -> state_tree.TreeUpdate:
        calls.append(len(items))
        return real(nodes, items)

    expected = MerkleState({b"b": b"2", b"c": b"3"}).root()
    state = MerkleState({b"a": b"1", b"b": b"2"})
    monkeypatch.setattr(state_tree, "update", counted)
    writes: dict[bytes, bytes | None] = {b"a": None, b"c": b"3"}
    predicted = state.root_with(writes)
    state.apply(dict(writes))
    assert calls == [2]
    assert state.root() == predicted == expected


def test_writes_changed_after_root_with_are_applied_as_they_are_then() -> None:
    state = MerkleState({b"a": b"1"})
    writes: dict[bytes, bytes | None] = {b"b": b"2"}
    first = state.root_with(writes)
    writes[b"b"] = b"changed"
    state.apply(writes)
    assert state.root() != first
    assert state.root() == MerkleState({b"a": b"1", b"b": b"changed"}).root()


@settings(max_examples=80, deadline=None)
@given(entries=ENTRIES, writes=WRITES)
def test_root_with_predicts_the_root_after_apply(
    entries: dict[bytes, bytes], writes: dict[bytes, bytes | None]
) -> None:
    state = MerkleState(entries)
    before = state.root()  # remembers an update that apply must not reuse wrongly
    predicted = state.root_with(writes)
    assert state.root() == before  # root_with changes nothing

    state.apply(writes)

    assert state.root() == predicted
    assert state.root() == MerkleState(_applied(entries, writes)).root()
    assert dict(state.items()) == _applied(entries, writes)


@settings(max_examples=80, deadline=None)
@given(entries=ENTRIES, key=KEYS, value=VALUES)
def test_every_real_write_changes_the_root(
    entries: dict[bytes, bytes], key: bytes, value: bytes
) -> None:
    state = MerkleState(entries)
    root = state.root()
    if entries.get(key) == value:
        assert state.root_with({key: value}) == root  # rewriting the same value is no change
    else:
        assert state.root_with({key: value}) != root
    if key in entries:
        assert state.root_with({key: None}) != root
    else:
        assert state.root_with({key: None}) == root  # deleting nothing is no change


def test_a_key_and_value_boundary_cannot_be_shifted() -> None:
    """(b"ab", b"c") and (b"a", b"bc") are different states with different roots."""
    assert MerkleState({b"ab": b"c"}).root() != MerkleState({b"a": b"bc"}).root()
    assert MerkleState({b"k": b""}).root() != MerkleState().root()


@settings(max_examples=60, deadline=None)
@given(data=st.data(), entries=st.dictionaries(KEYS, VALUES, min_size=1, max_size=40))
def test_insertion_order_never_changes_the_root(
    data: st.DataObject, entries: dict[bytes, bytes]
) -> None:
    order = data.draw(st.permutations(sorted(entries)))
    one_by_one = MerkleState()
    for k in order:
        one_by_one.root()  # interleave cached roots with writes
        one_by_one.apply({k: entries[k]})
    reordered = MerkleState({k: entries[k] for k in order})

    assert one_by_one.root() == MerkleState(entries).root() == reordered.root()
    view = Overlay(MerkleState())
    for k in reversed(order):
        view.put(k, entries[k])
    assert MerkleState().root_with(view.writes) == MerkleState(entries).root()


def test_empty_state_has_a_fixed_root_and_length() -> None:
    empty = MerkleState()
    assert len(empty) == 0
    assert empty.root() == MerkleState({}).root()
    state = MerkleState({b"a": b"1", b"b": b"2"})
    assert len(state) == 2
    state.apply({b"a": None})
    assert len(state) == 1
    state.apply({b"b": None})
    assert state.root() == empty.root()


# --- proofs ----------------------------------------------------------------------------------


def test_proofs_verify_for_every_key() -> None:
    state = _big_state()
    root = state.root()
    depths = set()
    for key, value in state.items():
        proof = state.prove(key)
        assert proof is not None
        assert (proof.key, proof.value) == (key, value)
        assert proof.verify(root)
        depths.add(len(proof.siblings))
    assert max(depths) >= 9  # ~log2(700) levels: the paths were really exercised


@settings(max_examples=50, deadline=None)
@given(entries=st.dictionaries(KEYS, VALUES, min_size=1, max_size=30), data=st.data())
def test_a_proof_verifies_against_its_own_root_only(
    entries: dict[bytes, bytes], data: st.DataObject
) -> None:
    state = MerkleState(entries)
    key = data.draw(st.sampled_from(sorted(entries)))
    proof = state.prove(key)
    assert proof is not None
    assert proof.verify(state.root())

    other_value = entries[key] + b"\x00"
    assert not dataclasses.replace(proof, value=other_value).verify(state.root())
    assert not proof.verify(state.root_with({key: other_value}))
    assert not proof.verify(sha256(b"not the root"))


def test_a_tampered_proof_fails() -> None:
    state = _big_state()
    root = state.root()
    proofs = (state.prove(k) for k, _ in state.items())
    proof = next(p for p in proofs if p is not None and len(p.siblings) >= 3)
    key = proof.key
    other_key = next(k for k, _ in state.items() if k != key)
    forgeries: list[StateProof] = [
        dataclasses.replace(proof, key=other_key),
        dataclasses.replace(proof, value=proof.value + b"x"),
        dataclasses.replace(proof, siblings=proof.siblings[:-1]),
        dataclasses.replace(proof, siblings=proof.siblings[1:]),
        dataclasses.replace(proof, siblings=(*proof.siblings, b"\x00" * 32)),
        dataclasses.replace(proof, siblings=(*proof.siblings[:-1], b"\x00" * 32)),
        dataclasses.replace(proof, siblings=tuple(reversed(proof.siblings))),
        dataclasses.replace(proof, siblings=(proof.siblings[0][:31], *proof.siblings[1:])),
    ]
    for forged in forgeries:
        assert not forged.verify(root), forged


def test_a_missing_key_has_no_proof() -> None:
    state = MerkleState({b"present": b"1"})
    assert state.prove(b"absent") is None
    state.apply({b"present": None})
    assert state.prove(b"present") is None


# --- scans and overlays ----------------------------------------------------------------------


def test_scan_returns_the_prefix_in_key_order() -> None:
    state = MerkleState({b"acct:\x03": b"c", b"acct:\x01": b"a", b"part:\x02": b"p", b"acc": b"x"})
    state.apply({b"acct:\x02": b"b"})
    assert list(state.scan(b"acct:")) == [
        (b"acct:\x01", b"a"),
        (b"acct:\x02", b"b"),
        (b"acct:\x03", b"c"),
    ]
    assert list(state.scan(b"none:")) == []
    assert [k for k, _ in state.scan(b"")] == sorted(k for k, _ in state.items())


@settings(max_examples=60, deadline=None)
@given(entries=ENTRIES, writes=WRITES, prefix=st.binary(max_size=1))
def test_overlay_reads_and_scans_see_its_writes_over_the_base(
    entries: dict[bytes, bytes], writes: dict[bytes, bytes | None], prefix: bytes
) -> None:
    base = MerkleState(entries)
    root = base.root()
    view = Overlay(base)
    for k, v in writes.items():
        if v is None:
            view.delete(k)
        else:
            view.put(k, v)
    expected = _applied(entries, writes)

    for k in set(entries) | set(writes):
        assert view.get(k) == expected.get(k)
    assert list(view.scan(prefix)) == sorted(
        (k, v) for k, v in expected.items() if k.startswith(prefix)
    )
    assert base.root() == root  # the base is untouched
    assert dict(base.items()) == entries


def test_overlay_delete_hides_a_base_entry_and_put_revives_it() -> None:
    base = MerkleState({b"a:1": b"x", b"a:2": b"y"})
    view = Overlay(base)
    view.delete(b"a:1")
    assert view.get(b"a:1") is None
    assert list(view.scan(b"a:")) == [(b"a:2", b"y")]
    assert view.writes == {b"a:1": None}
    view.put(b"a:1", b"z")
    assert list(view.scan(b"a:")) == [(b"a:1", b"z"), (b"a:2", b"y")]
    assert base.get(b"a:1") == b"x"


def test_nested_overlay_merges_into_its_parent() -> None:
    base = MerkleState({b"k1": b"1", b"k2": b"2"})
    outer = Overlay(base)
    outer.put(b"k3", b"3")
    inner = Overlay(outer)
    inner.put(b"k1", b"one")
    inner.delete(b"k2")
    inner.delete(b"k3")
    assert outer.get(b"k1") == b"1"  # not visible before the merge

    inner.merge_into_parent()

    assert inner.writes == {}
    assert outer.writes == {b"k1": b"one", b"k2": None, b"k3": None}
    assert list(outer.scan(b"k")) == [(b"k1", b"one")]
    assert dict(base.items()) == {b"k1": b"1", b"k2": b"2"}
    assert base.root_with(outer.writes) == MerkleState({b"k1": b"one"}).root()


def test_a_dropped_nested_overlay_leaves_the_parent_unchanged() -> None:
    outer = Overlay(MerkleState({b"k": b"v"}))
    outer.put(b"j", b"w")
    inner = Overlay(outer)
    inner.put(b"k", b"changed")
    inner.delete(b"j")
    del inner
    assert outer.writes == {b"j": b"w"}
    assert outer.get(b"k") == b"v"


def test_only_a_nested_overlay_can_merge() -> None:
    view = Overlay(MerkleState())
    view.put(b"k", b"v")
    with pytest.raises(TypeError):
        view.merge_into_parent()
    assert view.writes == {b"k": b"v"}
