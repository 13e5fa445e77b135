"""State sync (ADR 0039): snapshots are served whole and consistent, and only a set of entries
that hashes to a certified state root is ever installed; a peer that sends another is refused
with a typed error and the next peer is tried."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gridchain.consensus.certificates import CommitRule, check_certificate
from gridchain.market.state import MerkleState
from gridchain.market.state_tree import nodes_of
from gridchain.node.p2p.frames import StateChunk
from gridchain.node.state_nodes import ledger_state
from gridchain.node.state_sync import (
    SnapshotError,
    SnapshotRootMismatchError,
    SnapshotServer,
    fetch_snapshot,
    sync_from_peers,
    verify_snapshot,
)
from gridchain.node.store import Store, StoreError
from gridchain.protocol.block import CommittedBlock
from gridchain.protocol.crypto import SigningKey
from gridchain.protocol.errors import SignatureError
from tests.helpers import certify, make_block

CHAIN = b"\x11" * 32
KEY = SigningKey(b"\x05" * 32)
RULE = CommitRule(frozenset((KEY.public_key,)), 1)


def _entries(n: int, tag: bytes = b"v") -> dict[bytes, bytes]:
    return {f"acct:{i:04d}".encode(): tag + str(i).encode() for i in range(n)}


def _committed(
    height: int, entries: dict[bytes, bytes], prev: bytes = b"\x00" * 32
) -> CommittedBlock:
    block = make_block(CHAIN, height, prev, state_root=MerkleState(entries).root())
    return CommittedBlock(block, certify(block, [KEY], CHAIN))


def _check(committed: CommittedBlock) -> None:
    check_certificate(committed.certificate, committed.block, RULE, CHAIN)


def _ledger(path: Path, entries: dict[bytes, bytes]) -> Store:
    """A ledger at height 1 whose state is ``entries``."""
    store = Store(path)
    store.bind_chain(CHAIN, b"{}", iter(()), iter(()))
    state, nodes = ledger_state(store)
    tree = state.apply(dict(entries))
    store.commit_block(_committed(1, entries), dict(entries), tree, archived={})
    nodes.written(tree)
    return store


class _Peers:
    """Peers that serve ``snapshots[peer]`` (entries, certified block) in small chunks."""

    def __init__(
        self, snapshots: dict[bytes, tuple[dict[bytes, bytes], CommittedBlock]], chunk: int = 3
    ) -> None:
        self.snapshots = snapshots
        self.chunk = chunk
        self.asked: list[bytes] = []

    def peer_heights(self) -> dict[bytes, int]:
        return {p: c.block.height for p, (_, c) in self.snapshots.items()}

    async def fetch_state(self, peer: bytes, height: int, after: bytes) -> StateChunk:
        self.asked.append(peer)
        entries, committed = self.snapshots[peer]
        keys = sorted(k for k in entries if k > after)[: self.chunk]
        last = len(keys) < self.chunk or keys[-1] == max(entries)
        return StateChunk(
            1, committed.block.height, tuple(keys), tuple(entries[k] for k in keys), last
        )

    async def fetch_blocks(self, from_height: int, count: int) -> list[bytes]:
        self.block_peer = self.asked[-1]
        return [self.snapshots[self.asked[-1]][1].encode()]


def test_a_pinned_snapshot_is_served_whole_while_blocks_commit(tmp_path: Path) -> None:
    entries = _entries(40)
    store = _ledger(tmp_path / "l", entries)
    server = SnapshotServer(store)
    height, first, last = server.state_chunk(0, b"", 50)
    assert height == 1
    assert not last
    # A block commits meanwhile: it rewrites and deletes entries the joiner has not read yet.
    state, _ = ledger_state(store)
    writes: dict[bytes, bytes | None] = {k: None for k in list(entries)[20:30]}
    writes[b"acct:0039"] = b"changed"
    tree = state.apply(writes)
    store.commit_block(
        _committed(2, dict(state.items()), prev=store.get_block(1).block.hash()),  # type: ignore[union-attr]
        writes,
        tree,
        archived={},
    )
    served = list(first)
    while not last:
        height, more, last = server.state_chunk(1, served[-1][0], 50)
        assert height == 1
        served.extend(more)
    assert dict(served) == entries
    assert [k for k, _ in served] == sorted(entries)
    # A new request pins the new head.
    assert server.state_chunk(0, b"", 10**6)[0] == 2
    server.close()
    store.close()


def test_a_snapshot_the_server_no_longer_holds_is_answered_with_height_zero(tmp_path: Path) -> None:
    store = _ledger(tmp_path / "l", _entries(5))
    server = SnapshotServer(store)
    assert server.state_chunk(7, b"", 1000) == (0, [], True)
    server.close()
    store.close()


def test_an_honest_snapshot_is_verified_against_the_certified_root() -> None:
    entries = _entries(10)
    committed = _committed(1500, entries)
    peers = _Peers({b"a": (entries, committed)})
    snapshot = asyncio.run(fetch_snapshot(peers, b"a", _check))
    assert snapshot.entries == entries
    assert snapshot.height == 1500
    assert snapshot.tree.items() is not None
    assert dict(snapshot.tree.items()) == dict(nodes_of(entries).items())


def test_a_snapshot_whose_entries_do_not_match_the_root_is_refused() -> None:
    entries = _entries(10)
    committed = _committed(1500, entries)
    forged = {**entries, b"acct:0003": b"a balance the chain never had"}
    with pytest.raises(SnapshotRootMismatchError) as caught:
        verify_snapshot(committed, forged)
    assert caught.value.code == "snapshot_root_mismatch"
    peers = _Peers({b"liar": (forged, committed)})
    with pytest.raises(SnapshotRootMismatchError):
        asyncio.run(fetch_snapshot(peers, b"liar", _check))


def test_a_missing_entry_is_a_root_mismatch_too() -> None:
    entries = _entries(10)
    committed = _committed(1500, entries)
    short = dict(list(entries.items())[:-1])
    with pytest.raises(SnapshotRootMismatchError):
        asyncio.run(fetch_snapshot(_Peers({b"p": (short, committed)}), b"p", _check))


def test_a_block_whose_certificate_does_not_prove_it_is_refused() -> None:
    entries = _entries(4)
    block = make_block(CHAIN, 9, b"\x00" * 32, state_root=MerkleState(entries).root())
    forged = CommittedBlock(block, certify(block, [SigningKey(b"\x09" * 32)], CHAIN))
    with pytest.raises(SignatureError):
        asyncio.run(fetch_snapshot(_Peers({b"p": (entries, forged)}), b"p", _check))


def test_chunks_out_of_key_order_are_refused() -> None:
    class Shuffled(_Peers):
        async def fetch_state(self, peer: bytes, height: int, after: bytes) -> StateChunk:
            return StateChunk(1, 5, (b"b", b"a"), (b"1", b"2"), True)

    with pytest.raises(SnapshotError, match="ascending"):
        asyncio.run(fetch_snapshot(Shuffled({}), b"p", _check))


def test_the_joiner_refuses_a_lying_peer_and_takes_the_next_one() -> None:
    entries = _entries(12)
    committed = _committed(2000, entries)
    forged = {**entries, b"acct:0000": b"forged"}
    # The liar claims the highest head, so it is asked first.
    liar_block = _committed(2100, entries)
    peers = _Peers({b"liar": (forged, liar_block), b"honest": (entries, committed)})

    async def heights() -> dict[bytes, int]:
        return peers.peer_heights()

    snapshot = asyncio.run(sync_from_peers(peers, 0, 1000, _check, heights))
    assert snapshot is not None
    assert snapshot.height == 2000
    assert snapshot.entries == entries
    assert peers.asked[0] == b"liar"


def test_no_snapshot_when_the_peers_are_not_far_enough_ahead() -> None:
    entries = _entries(3)
    peers = _Peers({b"p": (entries, _committed(900, entries))})

    async def heights() -> dict[bytes, int]:
        return peers.peer_heights()

    assert asyncio.run(sync_from_peers(peers, 0, 1000, _check, heights)) is None
    assert peers.asked == []


def test_installing_a_snapshot_replaces_the_live_state_and_marks_the_history(
    tmp_path: Path,
) -> None:
    store = _ledger(tmp_path / "l", _entries(30, b"old"))
    entries = _entries(7, b"new")
    committed = _committed(5000, entries)
    tree = verify_snapshot(committed, entries)
    store.install_snapshot(committed, entries.items(), tree.items())
    assert store.head_height() == 5000
    assert store.sync_base() == 5000
    assert dict(store.state_items()) == entries
    state, _ = ledger_state(store)
    assert state.root() == committed.block.header.state_root
    assert store.get_block(1) is not None  # the history it had stays
    assert store.get_block(4999) is None  # nothing between its old head and the snapshot
    with pytest.raises(StoreError):
        store.install_snapshot(committed, entries.items(), tree.items())
    store.close()
