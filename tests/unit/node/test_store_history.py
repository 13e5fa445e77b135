"""The ledger's two LevelDBs (ADR 0050): nothing committed is lost at any write point.

Why: since schema 3 a commit is two synced batches, the history's (block, indexes, archive)
and then the live state's (state, tree, head).  A crash between them must leave a ledger that
opens at the old head with no trace of the half-written block, and a schema-2 ledger (one
LevelDB) must open migrated with everything it held, even when the migration itself is cut.
The crash is injected at each write point and, once, made real: a child process killed with
SIGKILL between the two writes.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import plyvel
import pytest

from gridchain.market.state import MerkleState
from gridchain.market.state_tree import nodes_of
from gridchain.node import store_schema as k
from gridchain.node.state_nodes import ledger_state
from gridchain.node.store import LedgerLayoutError, Store
from gridchain.protocol.block import CommittedBlock
from gridchain.protocol.crypto import SigningKey
from tests.helpers import certify, make_block, transfer

CHAIN = b"\x22" * 32
KEY = SigningKey(b"\x06" * 32)
PAYER = SigningKey(b"\x07" * 32)
ROOT = Path(__file__).resolve().parents[3]


def _writes(height: int) -> dict[bytes, bytes | None]:
    """Block ``height``'s state writes: a new entry, and the last block's entry pruned."""
    writes: dict[bytes, bytes | None] = {f"order:{height:04d}".encode(): b"open"}
    if height > 1:
        writes[f"order:{height - 1:04d}".encode()] = None
    return writes


def _archived(height: int) -> dict[bytes, bytes]:
    return {f"order:{height - 1:04d}".encode(): b"open"} if height > 1 else {}


def _block(height: int, prev: bytes, root: bytes) -> CommittedBlock:
    txs = [transfer(PAYER, CHAIN, height * 2 + i, KEY.public_key[:20], 1) for i in range(2)]
    block = make_block(CHAIN, height, prev, txs, state_root=root)
    return CommittedBlock(block, certify(block, [KEY], CHAIN))


class _Chain:
    """A ledger and the in-memory state beside it, committing the blocks of ``_writes``."""

    def __init__(self, path: Path) -> None:
        self.store = Store(path)
        self.store.bind_chain(CHAIN, b"{}", iter(()), iter(()))
        self.state, self.nodes = ledger_state(self.store)
        self.blocks: list[CommittedBlock] = []

    def next(self) -> tuple[CommittedBlock, dict[bytes, bytes | None], dict[bytes, bytes | None]]:
        """The next block, its state writes and its tree writes (applied to the memory only)."""
        height = self.store.head_height() + 1
        prev = self.blocks[-1].block.hash() if self.blocks else CHAIN
        writes = _writes(height)
        committed = _block(height, prev, self.state.root_with(writes))
        return committed, writes, self.state.tree_writes(writes)

    def commit(self) -> CommittedBlock:
        committed, writes, _ = self.next()
        tree = self.state.apply(writes)
        height = committed.block.height
        self.store.commit_block(committed, writes, tree, archived=_archived(height))
        self.nodes.written(tree)
        self.blocks.append(committed)
        return committed


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[_Chain]:
    c = _Chain(tmp_path / "ledger")
    yield c
    c.store.close()


def _everything(store: Store) -> dict[str, Any]:
    head = store.head_height()
    blocks = [store.get_block_raw(h) for h in range(head + 3)]
    return {
        "head": head,
        "blocks": blocks,
        "by_hash": [store.height_of_block(bytes(32))]
        + [store.height_of_block(b.block.hash()) for b in _decoded(blocks)],
        "txs": [store.tx_location(tx.hash()) for b in _decoded(blocks) for tx in b.block.txs],
        "state": list(store.state_items()),
        "tree": list(store.tree_items()),
        "archive": list(store.archived_from(b"order:", b"")),
        "consensus": store.consensus_records(),
    }


def _decoded(blocks: list[bytes | None]) -> list[CommittedBlock]:
    from gridchain.protocol.block import decode_committed

    return [decode_committed(raw) for raw in blocks if raw is not None]


def _reopen(chain: _Chain, path: Path) -> _Chain:
    """Close and open ``path`` again, keeping the chain's blocks and memory state in step."""
    chain.store.close()
    again = _Chain.__new__(_Chain)
    again.store = Store(path)
    again.state, again.nodes = ledger_state(again.store)
    again.blocks = chain.blocks[: again.store.head_height()]
    return again


class _CrashError(Exception):
    pass


def _crash(*args: Any, **kwargs: Any) -> None:
    raise _CrashError


# --- the write order -------------------------------------------------------------------------


def test_a_commit_is_two_synced_batches_history_first(chain: _Chain) -> None:
    chain.commit()
    order: list[tuple[str, dict[str, Any]]] = []
    for name in ("_history", "_db"):
        db = getattr(chain.store, name)
        setattr(chain.store, name, _BatchSpy(db, name, order))
    try:
        chain.commit()
    finally:
        for name in ("_history", "_db"):
            setattr(chain.store, name, getattr(chain.store, name).db)
    assert order == [
        ("_history", {"sync": True, "transaction": True}),
        ("_db", {"sync": True, "transaction": True}),
    ]
    assert chain.store.head_height() == 2


class _BatchSpy:
    """Wraps a plyvel DB: records its write batches in ``order``, refuses writes outside one."""

    def __init__(self, db: Any, name: str, order: list[tuple[str, dict[str, Any]]]) -> None:
        self.db, self.name, self.order = db, name, order

    def write_batch(self, **kwargs: Any) -> Any:
        self.order.append((self.name, kwargs))
        return self.db.write_batch(**kwargs)

    def put(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("a write outside the batch")

    def delete(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("a write outside the batch")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.db, name)


def test_the_live_state_holds_no_history_and_the_history_no_state(chain: _Chain) -> None:
    for _ in range(3):
        chain.commit()
    live = {key[:2] for key in chain.store._db.iterator(include_value=False)}
    history = {key[:2] for key in chain.store._history.iterator(include_value=False)}
    assert live == {k.META, k.STATE, k.TREE}
    assert history == {k.META, *k.HISTORY_PREFIXES}


# --- a crash at each write point -------------------------------------------------------------


def test_a_crash_before_the_history_write_changes_nothing(
    chain: _Chain, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chain.commit()
    before = _everything(chain.store)
    monkeypatch.setattr(Store, "_write_history", _crash)
    with pytest.raises(_CrashError):
        chain.commit()
    monkeypatch.undo()
    assert _everything(chain.store) == before
    again = _reopen(chain, tmp_path / "ledger")
    assert _everything(again.store) == before
    again.store.close()


def test_a_crash_between_the_two_writes_rolls_the_block_back_on_open(
    chain: _Chain, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chain.commit()
    chain.commit()
    before = _everything(chain.store)
    pending, _, _ = chain.next()
    monkeypatch.setattr(Store, "_write_live", _crash)
    with pytest.raises(_CrashError):
        chain.commit()
    monkeypatch.undo()
    # In the process that crashed: the history holds block 3, nothing serves it; its archive
    # entry shadows a key that is still live (the API reads the live value first).
    assert chain.store._history.get(k.block_key(3)) is not None
    assert {**_everything(chain.store), "archive": before["archive"]} == before
    assert dict(chain.store.state_items())[b"order:0002"] == b"open"
    assert chain.store.height_of_block(pending.block.hash()) is None
    assert chain.store.tx_location(pending.block.txs[0].hash()) is None

    again = _reopen(chain, tmp_path / "ledger")
    try:
        assert _everything(again.store) == before
        history = dict(again.store._history.iterator())
        assert k.block_key(3) not in history
        assert k.block_hash_key(pending.block.hash()) not in history
        assert all(k.tx_key(tx.hash()) not in history for tx in pending.block.txs)
        assert k.archive_key(b"order:0002") not in history  # block 3's archive entry
        assert history[k.HISTORY_HEAD] == k.u64(2)
        # The node commits block 3 again, and the ledger is as if nothing had happened.
        committed = again.commit()
        assert committed == pending
        assert again.store.head_height() == 3
        assert again.store.archived(b"order:0002") == b"open"
        assert [again.store.tx_location(tx.hash()) for tx in pending.block.txs] == [
            (3, 0),
            (3, 1),
        ]
    finally:
        again.store.close()


def test_a_crash_after_both_writes_keeps_the_block(chain: _Chain, tmp_path: Path) -> None:
    chain.commit()
    committed = chain.commit()
    before = _everything(chain.store)
    again = _reopen(chain, tmp_path / "ledger")
    try:
        assert _everything(again.store) == before
        assert again.store.get_block(2) == committed
        assert again.state.root() == committed.block.header.state_root
    finally:
        again.store.close()


def _child(path: str) -> None:
    """Run in a child process: commit block 1, then die by SIGKILL between block 2's writes."""
    chain = _Chain(Path(path))
    chain.commit()

    def killed(*args: Any, **kwargs: Any) -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    Store._write_live = killed  # type: ignore[method-assign]
    chain.commit()


def test_a_process_killed_between_the_two_writes_loses_nothing_committed(tmp_path: Path) -> None:
    path = tmp_path / "ledger"
    code = f"from tests.unit.node.test_store_history import _child; _child({str(path)!r})"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, timeout=120, check=False)
    assert done.returncode == -signal.SIGKILL

    chain = _Chain(path)  # opens, recovers, binds (already bound: nothing written)
    try:
        assert chain.store.head_height() == 1
        assert chain.store._history.get(k.block_key(2)) is None
        assert chain.store.archived(b"order:0001") is None  # block 2's archive entry
        chain.blocks = [_block(1, CHAIN, MerkleState({b"order:0001": b"open"}).root())]
        assert chain.store.get_block(1) == chain.blocks[0]
        chain.commit()
        assert chain.store.head_height() == 2
        assert chain.store.archived(b"order:0001") == b"open"
        assert chain.state.root() == chain.blocks[-1].block.header.state_root
    finally:
        chain.store.close()


def test_a_history_behind_the_head_is_a_typed_refusal(chain: _Chain, tmp_path: Path) -> None:
    chain.commit()
    chain.store.close()
    shutil.rmtree(tmp_path / "ledger" / k.HISTORY_DIR)
    with pytest.raises(LedgerLayoutError, match="below its head 1"):
        Store(tmp_path / "ledger")


# --- migration of a schema-2 ledger ----------------------------------------------------------


def _as_single_db(path: Path) -> None:
    """Rewrite a closed schema-3 ledger as schema 2 wrote it: one LevelDB, no history/."""
    history = plyvel.DB(str(path / k.HISTORY_DIR))
    live = plyvel.DB(str(path))
    with live.write_batch() as batch:
        for key, value in history.iterator():
            if not key.startswith(k.META):
                batch.put(key, value)
        batch.put(k.SCHEMA_VERSION, k.SINGLE_DB_SCHEMA_VERSION)
    history.close()
    live.close()
    shutil.rmtree(path / k.HISTORY_DIR)


def test_a_schema_2_ledger_is_migrated_on_open(chain: _Chain, tmp_path: Path) -> None:
    for _ in range(4):
        chain.commit()
    chain.store.persist_consensus({b"view": b"\x03"})
    before = _everything(chain.store)
    chain.store.close()
    _as_single_db(tmp_path / "ledger")

    store = Store(tmp_path / "ledger")
    try:
        assert _everything(store) == before
        assert store._db.get(k.SCHEMA_VERSION) == k.CURRENT_SCHEMA_VERSION
        assert store.bind_chain(CHAIN, b"{}", iter(()), iter(())) is False
        live = {key[:2] for key in store._db.iterator(include_value=False)}
        assert live == {k.META, k.STATE, k.TREE, k.CONSENSUS}
        state, _ = ledger_state(store)
        assert state.root() == chain.blocks[-1].block.header.state_root
        assert dict(store.tree_items()) == dict(nodes_of(dict(state.items())).items())
    finally:
        store.close()


@pytest.mark.parametrize("cut", ["_move", "_drop"])
def test_a_migration_cut_short_finishes_on_the_next_open(
    chain: _Chain, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cut: str
) -> None:
    for _ in range(3):
        chain.commit()
    before = _everything(chain.store)
    chain.store.close()
    _as_single_db(tmp_path / "ledger")

    calls = 0
    real = getattr(Store, cut)

    def once_then_crash(*args: Any, **kwargs: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:  # after the first prefix moved or dropped
            raise _CrashError
        real(*args, **kwargs)

    monkeypatch.setattr(
        Store, cut, staticmethod(once_then_crash) if cut == "_move" else once_then_crash
    )
    with pytest.raises(_CrashError):
        Store(tmp_path / "ledger")
    monkeypatch.undo()

    store = Store(tmp_path / "ledger")
    try:
        assert _everything(store) == before
        assert store._db.get(k.SCHEMA_VERSION) == k.CURRENT_SCHEMA_VERSION
    finally:
        store.close()
