"""The LevelDB store on a real database: chain binding, atomic commits, reopen, consensus records.

Why: the store is the only thing that survives a crash.  A data directory must never mix two
chains; a block, its indexes, its state writes and the new head must land together or not at
all (one synced batch of the live state, after the history's: tests/unit/node/
test_store_history.py has the crash between the two), so a commit that is refused writes
nothing; and everything, including the consensus engine's signing records, must be there again
after a restart.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gridchain.genesis.builder import GenesisBundle
from gridchain.market.app import Application
from gridchain.market.state import MerkleState
from gridchain.market.state_tree import nodes_of
from gridchain.node import store_schema as k
from gridchain.node.state_nodes import bind_genesis, ledger_state
from gridchain.node.store import Store, StoreError, WrongChainError
from gridchain.protocol.block import CommittedBlock
from gridchain.protocol.tx import Transaction
from tests.helpers import block_context, certify, make_block, small_bundle, transfer

GENESIS_DOC = b'{"chain": "test"}'


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "ledger")
    yield s
    s.close()


def _bind(store: Store, bundle: GenesisBundle, state: MerkleState) -> bool:
    return bind_genesis(store, bundle.genesis.chain_id, GENESIS_DOC, state)


def _next_block(
    app: Application,
    bundle: GenesisBundle,
    state: MerkleState,
    txs: list[Transaction],
    *,
    height: int,
    prev_hash: bytes,
) -> tuple[CommittedBlock, dict[bytes, bytes | None]]:
    """Execute ``txs`` on ``state`` (without applying) and certify a block carrying them."""
    execution = app.execute_block(state, txs, block_context(height))
    validator = bundle.validators[0].key
    block = make_block(
        bundle.genesis.chain_id,
        height,
        prev_hash,
        txs,
        state_root=execution.state_root,
        proposer=validator.public_key,
    )
    certificate = certify(block, [validator], bundle.genesis.chain_id)
    return CommittedBlock(block, certificate), execution.writes


def _everything(store: Store) -> dict[str, Any]:
    head = store.head_height()
    return {
        "head": head,
        "blocks": [store.get_block_raw(h) for h in range(head + 3)],
        "state": list(store.state_items()),
        "consensus": store.consensus_records(),
    }


# --- binding a data directory to a chain -----------------------------------------------------


def test_a_new_ledger_is_bound_with_the_genesis_state(
    store: Store, bundle: GenesisBundle, state: MerkleState
) -> None:
    assert _bind(store, bundle, state) is True
    assert list(store.state_items()) == list(state.items())
    assert store.head_height() == 0
    assert store.get_block(0) is None
    assert store.get_block(1) is None


def test_binding_the_same_chain_again_changes_nothing(
    store: Store, bundle: GenesisBundle, state: MerkleState
) -> None:
    _bind(store, bundle, state)
    before = _everything(store)
    assert (
        store.bind_chain(bundle.genesis.chain_id, b"ignored", iter([(b"x", b"y")]), iter(()))
        is False
    )
    assert _everything(store) == before


def test_a_ledger_of_another_chain_is_refused(
    store: Store, bundle: GenesisBundle, state: MerkleState
) -> None:
    _bind(store, bundle, state)
    before = _everything(store)
    other = small_bundle(chain_name="another-chain").genesis.chain_id
    with pytest.raises(WrongChainError):
        store.bind_chain(other, GENESIS_DOC, iter([(b"x", b"y")]), iter(()))
    assert _everything(store) == before


def test_a_data_dir_that_cannot_be_created_is_a_store_error(tmp_path: Path) -> None:
    """Failed before: FileExistsError (an OSError, reported by the node as "cannot listen")."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for path in (blocker, blocker / "data"):
        with pytest.raises(StoreError, match=r"^node\.data_dir: cannot create the ledger"):
            Store(path)


def test_a_ledger_open_elsewhere_is_refused_with_a_store_error(tmp_path: Path) -> None:
    first = Store(tmp_path / "ledger")
    try:
        with pytest.raises(StoreError):
            Store(tmp_path / "ledger")
    finally:
        first.close()
    first.close()  # closing twice is harmless


def test_a_ledger_of_another_schema_is_refused(
    store: Store, bundle: GenesisBundle, state: MerkleState
) -> None:
    """A schema-1 ledger committed to the bucketed root of ADR 0003: its state roots mean
    something else, so the node refuses it instead of halting on a divergence later."""
    _bind(store, bundle, state)
    store._db.put(k.SCHEMA_VERSION, b"1")
    with pytest.raises(StoreError, match="schema 1"):
        _bind(store, bundle, state)


# --- commits ---------------------------------------------------------------------------------


def test_commit_writes_block_indexes_state_and_head(
    store: Store, app: Application, bundle: GenesisBundle, state: MerkleState, chain_id: bytes
) -> None:
    a, b, c = bundle.participants
    _bind(store, bundle, state)
    txs = [transfer(a, chain_id, 0, b, 10), transfer(b, chain_id, 0, c, 20)]
    committed, writes = _next_block(app, bundle, state, txs, height=1, prev_hash=chain_id)

    store.commit_block(committed, writes, state.apply(writes), archived={})

    assert store.head_height() == 1
    assert store.get_block(1) == committed
    assert store.get_block_raw(1) == committed.encode()
    assert store.height_of_block(committed.block.hash()) == 1
    assert [store.tx_location(tx.hash()) for tx in txs] == [(1, 0), (1, 1)]
    assert store.tx_location(transfer(a, chain_id, 5, b, 1).hash()) is None
    assert list(store.state_items()) == list(state.items())
    assert MerkleState(dict(store.state_items())).root() == committed.block.header.state_root


def test_commit_deletes_state_keys_written_as_none(
    store: Store, bundle: GenesisBundle, state: MerkleState, chain_id: bytes
) -> None:
    _bind(store, bundle, state)
    gone = next(iter(state.items()))[0]
    writes: dict[bytes, bytes | None] = {gone: None, b"new-key": b"v"}
    block = make_block(chain_id, 1, chain_id, state_root=state.root_with(writes))
    store.commit_block(
        CommittedBlock(block, certify(block, [bundle.validators[0].key], chain_id)),
        writes,
        state.tree_writes(writes),
        archived={},
    )
    stored = dict(store.state_items())
    assert gone not in stored
    assert stored[b"new-key"] == b"v"
    assert len(stored) == len(state)


class _BatchSpy:
    """Wraps the plyvel DB: counts write batches and refuses writes outside one."""

    def __init__(self, db: Any) -> None:
        self._db = db
        self.batches: list[dict[str, Any]] = []

    def write_batch(self, **kwargs: Any) -> Any:
        self.batches.append(kwargs)
        return self._db.write_batch(**kwargs)

    def put(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("a write outside the batch")

    def delete(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("a write outside the batch")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)


def test_a_commit_writes_the_live_state_in_one_synced_batch(
    store: Store, app: Application, bundle: GenesisBundle, state: MerkleState, chain_id: bytes
) -> None:
    a, b, _ = bundle.participants
    _bind(store, bundle, state)
    txs = [transfer(a, chain_id, 0, b, 1)]
    committed, writes = _next_block(app, bundle, state, txs, height=1, prev_hash=chain_id)
    spy = _BatchSpy(store._db)
    store._db = spy
    try:
        store.commit_block(committed, writes, state.tree_writes(writes), archived={})
    finally:
        store._db = spy._db
    assert spy.batches == [{"sync": True, "transaction": True}]
    assert store.head_height() == 1


def test_a_commit_at_the_wrong_height_writes_nothing(
    store: Store, app: Application, bundle: GenesisBundle, state: MerkleState, chain_id: bytes
) -> None:
    a, b, _ = bundle.participants
    _bind(store, bundle, state)
    tx = transfer(a, chain_id, 0, b, 10)
    skipping, writes = _next_block(app, bundle, state, [tx], height=2, prev_hash=chain_id)
    before = _everything(store)

    with pytest.raises(StoreError):
        store.commit_block(skipping, writes, state.tree_writes(writes), archived={})

    assert _everything(store) == before
    assert store.height_of_block(skipping.block.hash()) is None
    assert store.tx_location(tx.hash()) is None

    first, first_writes = _next_block(app, bundle, state, [tx], height=1, prev_hash=chain_id)
    first_tree = state.tree_writes(first_writes)
    store.commit_block(first, first_writes, first_tree, archived={})
    after_one = _everything(store)
    with pytest.raises(StoreError):  # the same height twice
        store.commit_block(first, first_writes, first_tree, archived={})
    assert _everything(store) == after_one


def test_close_and_reopen_keeps_everything(
    tmp_path: Path, app: Application, bundle: GenesisBundle, state: MerkleState, chain_id: bytes
) -> None:
    a, b, c = bundle.participants
    path = tmp_path / "ledger"
    store = Store(path)
    _bind(store, bundle, state)
    prev = chain_id
    blocks = []
    for height, txs in enumerate(
        [[transfer(a, chain_id, 0, b, 5)], [transfer(b, chain_id, 0, c, 7)]], start=1
    ):
        committed, writes = _next_block(app, bundle, state, txs, height=height, prev_hash=prev)
        store.commit_block(committed, writes, state.apply(writes), archived={})
        blocks.append(committed)
        prev = committed.block.hash()
    store.persist_consensus({b"solo/last-signed": b"\x00" * 7 + b"\x02" + prev})
    before = _everything(store)
    store.close()

    reopened = Store(path)
    try:
        assert _everything(reopened) == before
        assert reopened.head_height() == 2
        assert [reopened.get_block(h) for h in (1, 2)] == blocks
        assert reopened.height_of_block(blocks[1].block.hash()) == 2
        assert reopened.bind_chain(chain_id, GENESIS_DOC, iter(()), iter(())) is False
        assert MerkleState(dict(reopened.state_items())).root() == state.root()
        # The stored tree is the tree of the stored state: read from the ledger, no rebuild.
        from_ledger, _ = ledger_state(reopened)
        assert from_ledger.root() == state.root() == blocks[-1].block.header.state_root
        assert dict(reopened.tree_items()) == dict(nodes_of(dict(state.items())).items())
    finally:
        reopened.close()


# --- consensus records -----------------------------------------------------------------------


def test_consensus_records_persist_and_stay_out_of_the_state(
    tmp_path: Path, bundle: GenesisBundle, state: MerkleState
) -> None:
    path = tmp_path / "ledger"
    store = Store(path)
    _bind(store, bundle, state)
    store.persist_consensus({b"view": b"\x01", b"last-vote": b"a"})
    store.persist_consensus({b"last-vote": b"b"})
    assert store.consensus_records() == {b"view": b"\x01", b"last-vote": b"b"}
    assert list(store.state_items()) == list(state.items())
    store.close()

    reopened = Store(path)
    try:
        assert reopened.consensus_records() == {b"view": b"\x01", b"last-vote": b"b"}
        assert reopened._db.get(k.consensus_key(b"view")) == b"\x01"
    finally:
        reopened.close()
